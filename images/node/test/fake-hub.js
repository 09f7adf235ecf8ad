// A stand-in for the LogoMesh hub: a WebSocket server on a Unix socket in a temp folder that
// records what a plugin sends and lets a test answer, request, publish and shut down.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

// The SDK's own copy of ws (it is not on the plugin's module path).
const { WebSocketServer } = createRequire(import.meta.resolve('logomesh'))('ws');

export class FakeHub {
  /** Every upgrade request seen: { url, host }. */
  upgrades = [];
  /** Topics subscribed through the current connection. */
  subscriptions = new Set();
  /** The current plugin connection. */
  ws = null;
  /** How many connections the plugin made. */
  connections = 0;
  #queue = [];
  #waiters = [];
  #seq = 0;
  #connected = [];
  #closes = [];

  /**
   * @param {object} [options]
   * @param {boolean} [options.listen] start listening now (default true)
   * @param {object} [options.helloError] refuse hello with this error
   * @param {boolean} [options.answerControl] answer hello/subscribe/unsubscribe (default true)
   */
  constructor(options = {}) {
    this.options = { answerControl: true, ...options };
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-'));
    this.socketPath = path.join(this.dir, 'hub.sock');
    this.server = http.createServer((_req, res) => res.writeHead(404).end());
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    this.server.on('upgrade', (req, socket, head) => {
      this.upgrades.push({ url: req.url, host: req.headers.host });
      if (req.url !== '/v1') {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws));
    });
  }

  static async start(options = {}) {
    const hub = new FakeHub(options);
    if (options.listen !== false) await hub.listen();
    return hub;
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
  }

  #accept(ws) {
    this.ws = ws;
    this.connections++;
    this.lastClose = undefined;
    // A new connection starts with no subscriptions, as on the hub.
    this.subscriptions = new Set();
    ws.on('message', (raw) => this.#onMessage(JSON.parse(raw.toString())));
    ws.on('close', (code, reason) => {
      const r = { code, reason: reason.toString() };
      for (const w of this.#closes.splice(0)) w(r);
      this.lastClose = r;
    });
    for (const w of this.#connected.splice(0)) w(ws);
  }

  #onMessage(msg) {
    if (this.options.answerControl) {
      if (msg.type === 'hello') {
        if (this.options.helloError) this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: false, error: this.options.helloError });
        else this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: true, data: { plugin: 'fake', protocol: 1 } });
      } else if (msg.type === 'subscribe') {
        this.subscriptions.add(msg.topic);
        this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: true, data: { topic: msg.topic } });
      } else if (msg.type === 'unsubscribe') {
        this.subscriptions.delete(msg.topic);
        this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: true, data: { topic: msg.topic } });
      }
    }
    const i = this.#waiters.findIndex((w) => w.match(msg));
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(msg);
    } else {
      this.#queue.push(msg);
    }
  }

  #id() {
    return `hub-${++this.#seq}`;
  }

  /** The next message from the plugin that matches (a type name or a predicate). */
  next(match, timeoutMs = 5000) {
    const pred = typeof match === 'string' ? (m) => m.type === match : match;
    const i = this.#queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.#queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { match: pred, resolve };
      w.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`fake hub: no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Resolves with the next plugin connection (or the current one). */
  connection(timeoutMs = 5000) {
    if (this.ws) return Promise.resolve(this.ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fake hub: no connection')), timeoutMs);
      this.#connected.push((ws) => {
        clearTimeout(timer);
        resolve(ws);
      });
    });
  }

  /** Resolves with { code, reason } when the plugin connection closes. */
  closed(timeoutMs = 5000) {
    if (this.lastClose) return Promise.resolve(this.lastClose);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fake hub: connection not closed')), timeoutMs);
      this.#closes.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  send(msg) {
    this.ws.send(JSON.stringify({ timestamp: Date.now(), ...msg }));
  }

  /** Deliver a request to the plugin as the hub would and wait for its response. */
  async request(method, data, { from = 'caller', timeout = 30000, waitMs = 5000 } = {}) {
    const id = this.#id();
    this.send({ type: 'request', id, from, to: ['fake'], method, data, timeout });
    return this.next((m) => m.type === 'response' && m.correlationId === id, waitMs);
  }

  /** Send a request without waiting; returns its id. */
  sendRequest(method, data, { from = 'caller' } = {}) {
    const id = this.#id();
    this.send({ type: 'request', id, from, to: ['fake'], method, data, timeout: 30000 });
    return id;
  }

  respond(request, data) {
    this.send({ type: 'response', id: this.#id(), from: request.to[0], correlationId: request.id, success: true, data });
  }

  respondError(request, error) {
    this.send({ type: 'response', id: this.#id(), from: request.to[0], correlationId: request.id, success: false, error });
  }

  event(topic, data, from = 'publisher') {
    this.send({ type: 'event', id: this.#id(), from, topic, data });
  }

  broadcast(topic, data, from = 'publisher') {
    this.send({ type: 'broadcast', id: this.#id(), from, ...(topic ? { topic } : {}), data });
  }

  shutdown(graceMs) {
    this.send({ type: 'shutdown', id: this.#id(), data: { graceMs } });
  }

  /** Drop the plugin's connection without a close frame; the hub goes on listening. */
  async drop() {
    const closed = this.ws && this.ws.readyState !== this.ws.CLOSED ? this.closed() : Promise.resolve();
    this.ws?.terminate();
    await closed;
  }

  /** As a controller killed with kill -9: drop the connection and stop listening. */
  async crash() {
    await this.drop();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Listen again at the same path after crash(), as a restarted controller does. */
  async restart() {
    rmSync(this.socketPath, { force: true });
    await this.listen();
  }

  async close() {
    for (const c of this.wss.clients) c.terminate();
    if (this.server.listening) await new Promise((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A promise and the functions that settle it. */
export function gate() {
  let open;
  const promise = new Promise((r) => (open = r));
  return { promise, open };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve once check() is true (tests only: checked every 5 ms, for at most timeoutMs). */
export async function waitFor(check, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
