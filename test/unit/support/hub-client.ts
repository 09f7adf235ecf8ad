import { decode as unpack, encode as pack } from '@msgpack/msgpack';
import { expect } from 'vitest';
import WebSocket from 'ws';

export type Msg = Record<string, unknown> & { type: string; id: string };

/** A raw protocol client: what an SDK does, without an SDK. */
export class Client {
  readonly inbox: Msg[] = [];
  /** Frames that came as binary (msgpack), and as text. */
  binaryFrames = 0;
  textFrames = 0;
  private waiters: ((m: Msg) => void)[] = [];
  private n = 0;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      if (isBinary) this.binaryFrames++;
      else this.textFrames++;
      const m = (isBinary ? unpack(raw) : JSON.parse(raw.toString())) as Msg;
      this.inbox.push(m);
      for (const w of this.waiters.splice(0)) w(m);
    });
  }
  static async open(url: string, headers: Record<string, string> = {}, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, { ...options, headers });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Client(ws);
  }
  send(m: Record<string, unknown>): string {
    const id = (m.id as string) ?? `c${++this.n}`;
    this.ws.send(JSON.stringify({ ...m, id }));
    return id;
  }
  /** Send as a binary (msgpack) frame. */
  sendBinary(m: Record<string, unknown>): string {
    const id = (m.id as string) ?? `c${++this.n}`;
    this.ws.send(pack({ ...m, id }));
    return id;
  }
  raw(data: string | Buffer): void {
    this.ws.send(data);
  }
  async next(pred: (m: Msg) => boolean, ms = 2_000): Promise<Msg> {
    const found = this.inbox.find(pred);
    if (found) {
      this.inbox.splice(this.inbox.indexOf(found), 1);
      return found;
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching message within ${ms} ms; inbox: ${JSON.stringify(this.inbox)}`)), ms);
      const check = (m: Msg) => {
        if (pred(m)) {
          clearTimeout(timer);
          this.inbox.splice(this.inbox.indexOf(m), 1);
          resolve(m);
        } else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }
  reply(id: string, ms?: number): Promise<Msg> {
    return this.next((m) => m.correlationId === id, ms);
  }
  async hello(methods: string[]): Promise<void> {
    const id = this.send({ type: 'hello', protocol: 1, methods, sdk: 'test' });
    const r = await this.reply(id);
    expect(r.success, JSON.stringify(r)).toBe(true);
  }
  /** Serve requests with fn until closed. */
  serve(fn: (m: Msg) => unknown): void {
    this.ws.on('message', (raw: Buffer, isBinary: boolean) => {
      const m = (isBinary ? unpack(raw) : JSON.parse(raw.toString())) as Msg;
      if (m.type !== 'request') return;
      const out = fn(m);
      if (out !== undefined) this.send({ type: 'response', correlationId: m.id, success: true, data: out });
    });
  }
}

