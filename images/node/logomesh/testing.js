// 'logomesh/testing': a stand-in for the LogoMesh hub, to test a plugin without LogoMesh.
// A WebSocket server on a Unix socket in a temporary folder that records what the plugin
// sends and lets a test answer, request, publish and shut down:
//
//   const hub = await FakeHub.start({ pluginId: 'greeter' });
//   const plugin = createPlugin({ socketPath: hub.socketPath, exit: false, handleSignals: false });
//   const running = plugin.run();
//   await plugin.ready();
//   const response = await hub.request('hello', { name: 'Ada' });   // { success, data } or { success, error }
//   hub.shutdown(1000);
//   await running;
//   await hub.close();
//
// Given a transcript (loadTranscript(): the protocol's conformance session), the hub plays
// that session on the plugin's connection instead, and replayed() tells how it went.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { deferred } from './state.js';
import { loadProtocolFile, Mismatch, replay } from './transcript.js';

export { Mismatch, PROTOCOL_DIR } from './transcript.js';

/** The conformance transcript (images/protocol/transcript.json). */
export function loadTranscript() {
  return loadProtocolFile('transcript.json');
}

/** The protocol's constants (images/protocol/protocol.json). */
export function loadProtocol() {
  return loadProtocolFile('protocol.json');
}

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
  #replayed = deferred();

  /**
   * @param {object} [options]
   * @param {string} [options.pluginId] the plugin's id: the target of requests, and what hello's answer names (default 'fake')
   * @param {boolean} [options.listen] start listening now (default true, with start())
   * @param {object} [options.helloError] refuse hello with this error
   * @param {string[]} [options.subscribes] the manifest's coordination.subscribes: a hello or subscribe asking for a topic none of these covers is refused with LM_PERMISSION_DENIED, as the hub does (default: anything is allowed)
   * @param {boolean} [options.answerControl] answer hello/subscribe/unsubscribe (default true)
   * @param {object} [options.transcript] play this recorded session instead (see replayed())
   */
  constructor(options = {}) {
    this.options = { answerControl: true, pluginId: 'fake', ...options };
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
      this.wss.handleUpgrade(req, socket, head, (ws) => (this.options.transcript ? this.#play(ws) : this.#accept(ws)));
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
        const topics = Array.isArray(msg.subscriptions) ? msg.subscriptions : [];
        const refused = topics.map((t) => this.#refusal(t)).filter(Boolean);
        if (this.options.helloError) this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: false, error: this.options.helloError });
        else if (refused.length) this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: false, error: { code: 'LM_PERMISSION_DENIED', message: refused.join('; ') } });
        else {
          // Subscribed before the answer, as on the hub: the plugin is ready with them in place.
          for (const t of topics) this.subscriptions.add(t);
          this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: true, data: { plugin: this.options.pluginId, protocol: 1 } });
        }
      } else if (msg.type === 'subscribe') {
        const refused = this.#refusal(msg.topic);
        if (refused) {
          this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: false, error: { code: 'LM_PERMISSION_DENIED', message: refused } });
        } else {
          this.subscriptions.add(msg.topic);
          this.send({ type: 'response', id: this.#id(), correlationId: msg.id, success: true, data: { topic: msg.topic } });
        }
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

  /** Why the hub would refuse a subscription to topic under options.subscribes (undefined: it would not). */
  #refusal(topic) {
    const declared = this.options.subscribes;
    if (!declared || declared.some((d) => covers(d, String(topic)))) return undefined;
    return `plugin ${this.options.pluginId} may not subscribe to '${topic}': no pattern under coordination.subscribes covers it (listed: ${declared.join(', ') || 'none'})`;
  }

  /** The transcript's session on this connection. */
  #play(ws) {
    this.ws = ws;
    this.connections++;
    const frames = [];
    const waiting = [];
    let closed;
    const ended = new Promise((resolve) => ws.on('close', (code) => resolve((closed = code))));
    ws.on('message', (raw, isBinary) => {
      const text = isBinary ? `<${raw.length} binary bytes>` : raw.toString();
      const w = waiting.shift();
      if (w) w(text);
      else frames.push(text);
    });
    const within = (promise, ms, what) => {
      let timer;
      return Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms (${what})`)), ms)))]).finally(() =>
        clearTimeout(timer),
      );
    };
    const peer = {
      send: (text) => ws.send(text),
      next: (ms) =>
        frames.length
          ? Promise.resolve(frames.shift())
          : within(
              Promise.race([new Promise((resolve) => waiting.push(resolve)), ended.then((code) => Promise.reject(new Error(`the connection closed (${code})`)))]),
              ms,
              'a frame',
            ),
      ping: (text, ms) => {
        const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
        ws.ping(text);
        return within(pong, ms, 'a pong');
      },
      closed: (ms) => (closed !== undefined ? Promise.resolve(closed) : within(ended, ms, 'the close')),
    };
    replay(peer, this.options.transcript).then(this.#replayed.resolve, (err) => {
      this.#replayed.reject(err);
      ws.terminate();
    });
  }

  /**
   * With a transcript: resolves once the plugin followed it to its end (with what its $names
   * were bound to); rejects with a Mismatch naming the step it did not follow.
   */
  replayed(timeoutMs = 60_000) {
    let timer;
    const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Mismatch(`the transcript was not played out within ${timeoutMs} ms`)), timeoutMs)));
    return Promise.race([this.#replayed.promise, late]).finally(() => clearTimeout(timer));
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
    this.send({ type: 'request', id, from, to: [this.options.pluginId], method, data, timeout });
    return this.next((m) => m.type === 'response' && m.correlationId === id, waitMs);
  }

  /** Send a request without waiting; returns its id. */
  sendRequest(method, data, { from = 'caller' } = {}) {
    const id = this.#id();
    this.send({ type: 'request', id, from, to: [this.options.pluginId], method, data, timeout: 30000 });
    return id;
  }

  respond(request, data) {
    this.send({ type: 'response', id: this.#id(), from: request.to[0], correlationId: request.id, success: true, data });
  }

  respondError(request, error) {
    this.send({ type: 'response', id: this.#id(), from: request.to[0], correlationId: request.id, success: false, error });
  }

  /** Deliver an event as the hub would: `from` is the sender the hub vouches for. */
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

/**
 * Does a declared pattern cover target (a topic or a pattern) whole, as the hub checks a
 * subscription against the manifest? 'a.*' covers 'a.b' and 'a.b.*'; only '*' covers '*'.
 */
function covers(declared, target) {
  if (declared === '*') return true;
  if (target === '*') return false;
  if (declared.endsWith('.*')) return target.startsWith(declared.slice(0, -1));
  return declared === target;
}
