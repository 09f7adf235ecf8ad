import { get } from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';

/** A Chrome DevTools Protocol client for Node's inspector, through the controller's forwarded port. */
export class CdpClient {
  private n = 0;
  private readonly waiting = new Map<number, (r: { result?: Record<string, unknown>; error?: unknown }) => void>();
  private readonly events: { method: string; params: Record<string, unknown> }[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString()) as { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: unknown };
      if (m.id !== undefined) this.waiting.get(m.id)?.(m);
      else if (m.method) {
        this.events.push({ method: m.method, params: m.params ?? {} });
        for (const l of this.listeners) l();
      }
    });
  }

  /** /json/list on the forwarded port, then the WebSocket of the first target (its host rewritten to the forwarded port). */
  static async connect(port: number): Promise<CdpClient> {
    const list = await new Promise<{ webSocketDebuggerUrl: string }[]>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/json/list' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(JSON.parse(body) as { webSocketDebuggerUrl: string }[]));
      }).on('error', reject);
    });
    const url = new URL(list[0]!.webSocketDebuggerUrl);
    url.host = `127.0.0.1:${port}`;
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new CdpClient(ws);
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.n;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (r) => (r.error ? reject(new Error(JSON.stringify(r.error))) : resolve(r.result ?? {})));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  event(method: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return waitFor(() => this.events.find((e) => e.method === method)?.params, this.listeners, timeoutMs, method);
  }

  close(): void {
    this.ws.close();
  }
}

/** A Debug Adapter Protocol client (debugpy), over the forwarded TCP port. */
export class DapClient {
  private seq = 0;
  private buffer = Buffer.alloc(0);
  private readonly messages: Record<string, unknown>[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const head = this.buffer.indexOf('\r\n\r\n');
        if (head < 0) return;
        const length = Number(/Content-Length: (\d+)/i.exec(this.buffer.subarray(0, head).toString())?.[1]);
        if (this.buffer.length < head + 4 + length) return;
        this.messages.push(JSON.parse(this.buffer.subarray(head + 4, head + 4 + length).toString()) as Record<string, unknown>);
        this.buffer = this.buffer.subarray(head + 4 + length);
        for (const l of this.listeners) l();
      }
    });
  }

  static connect(port: number): Promise<DapClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new DapClient(s)));
      s.once('error', reject);
    });
  }

  /** Send a request; resolves with its response (rejects on success: false). */
  request(command: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const seq = ++this.seq;
    const body = JSON.stringify({ seq, type: 'request', command, arguments: args });
    this.socket.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return waitFor(() => this.messages.find((m) => m.type === 'response' && m.request_seq === seq), this.listeners, timeoutMs, command).then((r) => {
      if (r.success !== true) throw new Error(`${command}: ${JSON.stringify(r)}`);
      return (r.body as Record<string, unknown>) ?? {};
    });
  }

  /** Send a request without waiting for its response (debugpy answers attach only after configurationDone). */
  send(command: string, args: Record<string, unknown> = {}): number {
    const seq = ++this.seq;
    const body = JSON.stringify({ seq, type: 'request', command, arguments: args });
    this.socket.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return seq;
  }

  event(name: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const found = () => this.messages.find((m) => m.type === 'event' && m.event === name);
    // An event may have no body ('initialized'): found is what counts.
    return waitFor(found, this.listeners, timeoutMs, name).then((m) => (m.body as Record<string, unknown>) ?? {});
  }

  close(): void {
    this.socket.destroy();
  }
}

function waitFor<T>(find: () => T | undefined, listeners: Set<() => void>, timeoutMs: number, what: string): Promise<T> {
  const now = find();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const check = () => {
      const v = find();
      if (v === undefined) return;
      listeners.delete(check);
      clearTimeout(timer);
      resolve(v);
    };
    const timer = setTimeout(() => {
      listeners.delete(check);
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    listeners.add(check);
  });
}

/** A client of delve's JSON-RPC API (api-version 2), over the forwarded TCP port. */
export class DelveClient {
  private n = 0;
  private buffer = '';
  private readonly waiting = new Map<number, (r: { result: Record<string, unknown>; error: string | null }) => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const m = JSON.parse(line) as { id: number; result: Record<string, unknown>; error: string | null };
        this.waiting.get(m.id)?.(m);
      }
    });
  }

  static connect(port: number): Promise<DelveClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new DelveClient(s)));
      s.once('error', reject);
    });
  }

  /** `RPCServer.<method>`; resolves with its result, rejects with delve's error. */
  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const id = ++this.n;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.error) reject(new Error(`${method}: ${r.error}`));
        else resolve(r.result);
      });
      this.socket.write(`${JSON.stringify({ method: `RPCServer.${method}`, params: [params], id })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
