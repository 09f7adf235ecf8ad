import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { LogoMeshError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../permissions/audit-log.js';
import { decideCall, decideMessaging, type PluginPolicy } from './acl.js';
import {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  HARD_LIMIT_FACTOR,
  HOST,
  MAX_CALL_TIMEOUT_MS,
  parseFrame,
  PROTOCOL_VERSION,
  topicMatches,
  type Broadcast,
  type ClientMessage,
  type EventMsg,
  type HubMessage,
  type Request,
  type Response,
  type WireError,
} from './protocol.js';

export interface HubOptions {
  readonly log: Logger;
  /** Bearer token host clients must present on the TCP endpoint. */
  readonly token: string;
  /** Largest message accepted, in bytes (default 1 MiB). */
  readonly maxMessageBytes?: number;
  /** WebSocket ping interval; a peer that misses two is dropped (default 10 s). */
  readonly pingIntervalMs?: number;
  /** Outgoing bytes queued to one peer above which events and broadcasts to it are dropped. */
  readonly maxQueuedBytes?: number;
  /** Where permission decisions go (the audit trail). */
  readonly audit?: AuditSink;
  /** Requests, events and broadcasts a plugin may send per second, sustained (default 20000; bursts of twice that). Responses are not counted. */
  readonly rateLimit?: number;
  /** Calls a plugin may have waiting for answers at once (default 256). */
  readonly maxInFlight?: number;
  /** uid:gid that may connect to plugin sockets (the plugin user); the socket is chowned to it. */
  readonly socketOwner?: { uid: number; gid: number };
}

/** Someone connected to the hub: a plugin (by its own socket) or a host client. */
interface Peer {
  readonly id: string;
  readonly kind: 'plugin' | 'host';
  send(msg: HubMessage): void;
  readonly subscriptions: Set<string>;
  /** Bytes waiting to be written to this peer. */
  queued(): number;
  dropped: number;
  /** Calls this peer made that wait for an answer. */
  inFlight: number;
}

interface PluginSlot {
  readonly policy: PluginPolicy;
  readonly socketPath: string;
  readonly server: Server;
  peer?: Peer & { ws: WebSocket };
  /** Token bucket for the rate limit. */
  tokens: number;
  refilledAt: number;
  /** Last time each kind of violation was audited (one entry a second at most for each). */
  auditedAt: Map<string, number>;
  ready: boolean;
  methods: string[];
}

interface Pending {
  readonly caller: Peer;
  readonly callerId: string;
  readonly target: string;
  readonly method: string;
  readonly timer: NodeJS.Timeout;
}

export type HostMethod = (data: unknown, ctx: { from: string }) => unknown;

export interface HubStats {
  readonly connected: boolean;
  readonly ready: boolean;
  readonly methods: readonly string[];
  readonly droppedMessages: number;
}

/**
 * The controller's message hub. Each plugin gets its own Unix socket, so the hub knows who
 * is speaking from the connection: `from` is always set here, never taken from a message.
 * Host clients connect over TCP with a token. See docs/protocol.md.
 *
 * Events: 'ready' (pluginId, methods), 'disconnected' (pluginId).
 */
export class Hub extends EventEmitter {
  private readonly log: Logger;
  private readonly maxBytes: number;
  private readonly maxQueued: number;
  private readonly wss: WebSocketServer;
  private readonly plugins = new Map<string, PluginSlot>();
  private readonly pending = new Map<string, Pending>();
  private readonly hostMethods = new Map<string, HostMethod>();
  /** The names of hostMethods, kept as a set for the ACL on every call. */
  private readonly hostMethodNames = new Set<string>();
  private readonly hostPeers = new Set<Peer>();
  private readonly local: Peer;
  private readonly localWaiters = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly localSubs = new Map<string, Set<(data: unknown, meta: { from: string; topic: string }) => void>>();
  private tcp?: Server;
  private readonly audit: AuditSink;
  private readonly rate: number;
  private readonly maxInFlight: number;
  /** Operator revocations: plugin id -> `target.method` (or host method) no longer allowed. */
  private readonly revoked = new Map<string, Set<string>>();
  private heartbeat: NodeJS.Timeout;
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: HubOptions) {
    super();
    this.log = opts.log.child({ component: 'hub' });
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxQueued = opts.maxQueuedBytes ?? 8 * this.maxBytes;
    // ws reads up to the hard limit so an oversize message can be answered, not just cut off.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxBytes * HARD_LIMIT_FACTOR, perMessageDeflate: false, clientTracking: true });
    this.local = this.localPeer();
    this.audit = opts.audit ?? (() => undefined);
    this.rate = opts.rateLimit ?? 20_000;
    this.maxInFlight = opts.maxInFlight ?? 256;
    const interval = opts.pingIntervalMs ?? 10_000;
    this.heartbeat = setInterval(() => this.heartbeatTick(), interval);
    this.heartbeat.unref();
  }

  /** Listen for host clients on TCP; returns the port. */
  async listenHost(port = 0, host = '127.0.0.1'): Promise<number> {
    const server = createServer((_req, res) => res.writeHead(426).end('WebSocket only\n'));
    server.on('upgrade', (req, socket, head) => {
      if (!this.authorized(req)) return reject(socket, 401, 'LM_UNAUTHORIZED: missing or wrong bearer token');
      if (!isV1(req)) return reject(socket, 404, 'LM_PROTOCOL: connect to /v1');
      this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptHost(ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.tcp = server;
    return (server.address() as AddressInfo).port;
  }

  /** Open the socket a plugin will connect to. Its folder must exist only for this plugin. */
  async attachPlugin(policy: PluginPolicy, socketPath: string): Promise<void> {
    if (this.plugins.has(policy.id)) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin ${policy.id} is already attached to the hub`, { plugin: policy.id });
    mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    // A socket folder must be searchable by the plugin's uid (mkdtemp-style 0700 is not).
    chmodSync(path.dirname(socketPath), 0o755);
    rmSync(socketPath, { force: true });
    const server = createServer((_req, res) => res.writeHead(426).end('WebSocket only\n'));
    const slot: PluginSlot = { policy, socketPath, server, ready: false, methods: [], tokens: this.rate * 2, refilledAt: Date.now(), auditedAt: new Map() };
    server.on('upgrade', (req, socket, head) => {
      if (!isV1(req)) return reject(socket, 404, 'LM_PROTOCOL: connect to /v1');
      this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptPlugin(slot, ws));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    this.restrictSocket(socketPath);
    this.plugins.set(policy.id, slot);
  }

  /** Only the plugin's user (and root) may connect; anyone else on the host may not. */
  private restrictSocket(socketPath: string): void {
    const owner = this.opts.socketOwner;
    try {
      if (owner) chownSync(socketPath, owner.uid, owner.gid);
      chmodSync(socketPath, 0o600);
    } catch {
      // Not root: the plugin's uid cannot be given the socket, so it must be world-writable.
      chmodSync(socketPath, 0o666);
      this.log.warn({ socketPath }, 'cannot chown the plugin socket (controller not root); it is world-writable on this host');
    }
  }

  /** Close a plugin's socket and connection; its open calls fail with LM_PLUGIN_EXITED. */
  async detachPlugin(id: string): Promise<void> {
    const slot = this.plugins.get(id);
    if (!slot) return;
    this.plugins.delete(id);
    slot.peer?.ws.terminate();
    this.dropPeer(id, slot.peer);
    await new Promise<void>((resolve) => slot.server.close(() => resolve()));
    rmSync(slot.socketPath, { force: true });
  }

  /** Ask a plugin to shut down (it finishes in-flight calls, then exits). */
  requestShutdown(id: string, graceMs: number): boolean {
    const peer = this.plugins.get(id)?.peer;
    if (!peer) return false;
    peer.send({ type: 'shutdown', id: this.nextId(), data: { graceMs } });
    return true;
  }

  /**
   * Health check: a WebSocket ping to the plugin, true when its pong arrives within
   * `timeoutMs`. A stopped (SIGSTOP) or wedged process cannot answer, whatever it is doing.
   */
  ping(id: string, timeoutMs: number): Promise<boolean> {
    const ws = this.plugins.get(id)?.peer?.ws;
    if (!ws || ws.readyState !== ws.OPEN) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ws.off('pong', onPong);
        resolve(false);
      }, timeoutMs);
      const onPong = () => {
        clearTimeout(timer);
        resolve(true);
      };
      ws.once('pong', onPong);
      ws.ping();
    });
  }

  isReady(id: string): boolean {
    return this.plugins.get(id)?.ready === true;
  }

  stats(id: string): HubStats | undefined {
    const slot = this.plugins.get(id);
    if (!slot) return undefined;
    return { connected: !!slot.peer, ready: slot.ready, methods: slot.methods, droppedMessages: slot.peer?.dropped ?? 0 };
  }

  /** Serve a host method that plugins may call (when their manifest consumes it). */
  registerHostMethod(name: string, handler: HostMethod): void {
    this.hostMethods.set(name, handler);
    this.hostMethodNames.add(name);
  }

  /** Call a plugin method as the host application. Rejects with the coded error. */
  call(target: string, method: string, data: unknown, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<unknown> {
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      this.localWaiters.set(id, { resolve, reject });
      this.route(this.local, { type: 'request', id, to: [target], method, data, timeout: timeoutMs });
    });
  }

  /** Receive events and broadcasts of a topic as the host; returns the unsubscribe function. */
  subscribe(topic: string, handler: (data: unknown, meta: { from: string; topic: string }) => void): () => void {
    let set = this.localSubs.get(topic);
    if (!set) this.localSubs.set(topic, (set = new Set()));
    set.add(handler);
    this.local.subscriptions.add(topic);
    return () => {
      set.delete(handler);
      if (set.size === 0) {
        this.localSubs.delete(topic);
        this.local.subscriptions.delete(topic);
      }
    };
  }

  emitEvent(topic: string, data: unknown, to?: string[]): void {
    this.route(this.local, { type: 'event', id: this.nextId(), topic, data, ...(to ? { to } : {}) });
  }

  broadcast(topic: string | undefined, data: unknown): void {
    this.route(this.local, { type: 'broadcast', id: this.nextId(), data, ...(topic ? { topic } : {}) });
  }

  /** Close every socket and fail every open call. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await Promise.all([...this.plugins.keys()].map((id) => this.detachPlugin(id)));
    for (const peer of this.hostPeers) (peer as Peer & { ws?: WebSocket }).ws?.terminate();
    for (const [id, w] of this.localWaiters) {
      w.reject(new LogoMeshError('LM_PLUGIN_UNAVAILABLE', 'the hub closed', {}));
      this.localWaiters.delete(id);
    }
    if (this.tcp) await new Promise<void>((resolve) => this.tcp!.close(() => resolve()));
    this.wss.close();
  }

  // --- connections -------------------------------------------------------------------------

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const want = Buffer.from(this.opts.token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private wsPeer(id: string, kind: 'plugin' | 'host', ws: WebSocket): Peer & { ws: WebSocket } {
    return {
      id,
      kind,
      ws,
      subscriptions: new Set(),
      dropped: 0,
      inFlight: 0,
      queued: () => ws.bufferedAmount,
      send: (msg) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
      },
    };
  }

  private acceptPlugin(slot: PluginSlot, ws: WebSocket): void {
    const id = slot.policy.id;
    if (slot.peer) {
      this.log.warn({ plugin: id }, 'a second connection replaces the first');
      const old = slot.peer;
      slot.peer = undefined;
      old.ws.terminate();
      this.dropPeer(id, old);
    }
    const peer = this.wsPeer(id, 'plugin', ws);
    slot.peer = peer;
    slot.ready = false;
    this.track(ws);
    ws.on('message', (raw: RawData, isBinary: boolean) => this.onFrame(peer, slot, raw as Buffer, isBinary));
    ws.on('close', () => {
      if (slot.peer !== peer) return;
      slot.peer = undefined;
      slot.ready = false;
      this.dropPeer(id, peer);
      this.emit('disconnected', id);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.log.debug({ plugin: id, err: err.message }, 'plugin socket error');
      // ws closes the connection after this (1009 for a frame over the hard limit, 1002/1007 otherwise).
      const code: ErrorCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'LM_MESSAGE_TOO_LARGE' : 'LM_PROTOCOL';
      this.violation(slot, code, `connection closed: ${err.message}`, 'closed');
    });
  }

  private acceptHost(ws: WebSocket): void {
    const peer = this.wsPeer(HOST, 'host', ws);
    this.hostPeers.add(peer);
    this.track(ws);
    ws.on('message', (raw: RawData, isBinary: boolean) => this.onFrame(peer, undefined, raw as Buffer, isBinary));
    ws.on('close', () => {
      this.hostPeers.delete(peer);
      this.dropPeer(undefined, peer);
    });
    ws.on('error', () => undefined);
  }

  private track(ws: WebSocket): void {
    const state = ws as WebSocket & { lmMissed?: number };
    state.lmMissed = 0;
    ws.on('pong', () => (state.lmMissed = 0));
  }

  private heartbeatTick(): void {
    for (const ws of this.wss.clients) {
      const state = ws as WebSocket & { lmMissed?: number };
      state.lmMissed = (state.lmMissed ?? 0) + 1;
      if (state.lmMissed > 2) ws.terminate();
      else ws.ping();
    }
  }

  /** A peer went away: calls to it fail now, calls from it are forgotten. */
  private dropPeer(pluginId: string | undefined, peer: Peer | undefined): void {
    for (const [hubId, p] of this.pending) {
      if (pluginId !== undefined && p.target === pluginId) {
        this.finish(hubId, fail('LM_PLUGIN_EXITED', `plugin ${pluginId} exited or disconnected during the call to ${p.method}`));
      } else if (peer && p.caller === peer) {
        clearTimeout(p.timer);
        this.pending.delete(hubId);
        peer.inFlight--;
      }
    }
  }

  // --- messages ---------------------------------------------------------------------------

  private onFrame(peer: Peer, slot: PluginSlot | undefined, raw: Buffer, isBinary: boolean): void {
    const parsed = parseFrame(raw, isBinary, this.maxBytes);
    if (!parsed.ok) {
      this.log.debug({ from: peer.id, error: parsed.error }, 'frame refused');
      // Garbage costs a token like any message, so it cannot be sent faster than the limit.
      if (slot && !this.takeToken(slot)) return;
      peer.send({ type: 'error', id: this.nextId(), ...(parsed.id ? { correlationId: parsed.id } : {}), error: parsed.error });
      if (slot) this.violation(slot, parsed.error.code as ErrorCode, `frame refused: ${parsed.error.message}`);
      return;
    }
    const msg = parsed.msg;
    // Answers are never limited: dropping one would leave its caller waiting for nothing.
    if (slot && msg.type !== 'response' && !this.takeToken(slot)) {
      return this.replyError(peer, msg.id, 'LM_RATE_LIMITED', `plugin ${slot.policy.id} exceeded its rate limit of ${this.rate} messages/s`);
    }
    if (slot && !slot.ready && msg.type !== 'hello') {
      return this.replyError(peer, msg.id, 'LM_PROTOCOL', `send hello before ${msg.type}`);
    }
    if (msg.type === 'hello') return slot ? this.hello(peer, slot, msg) : this.replyError(peer, msg.id, 'LM_PROTOCOL', 'host clients do not send hello');
    // The hub sets `from` itself from the socket; a plugin that claims another is told nothing
    // (its message goes on as its own) but it is on the record.
    const claimed = parsed.claimedFrom;
    if (slot && claimed !== undefined && claimed !== slot.policy.id) {
      this.violation(slot, 'LM_PERMISSION_DENIED', `a ${msg.type} claimed to come from '${claimed}'; the hub sent it as ${slot.policy.id}`, ':from');
    }
    this.route(peer, msg);
  }

  /** Token bucket: `rate` per second, bursts of twice that. */
  private takeToken(slot: PluginSlot): boolean {
    const now = Date.now();
    slot.tokens = Math.min(this.rate * 2, slot.tokens + ((now - slot.refilledAt) / 1000) * this.rate);
    slot.refilledAt = now;
    if (slot.tokens >= 1) {
      slot.tokens -= 1;
      return true;
    }
    this.violation(slot, 'LM_RATE_LIMITED', `more than ${this.rate} messages/s`);
    return false;
  }

  /** Audit a plugin breaking the protocol or a limit: one entry a second at most per plugin and kind. */
  private violation(slot: PluginSlot, code: ErrorCode, reason: string, kind = ''): void {
    const key = `${code}${kind}`;
    const now = Date.now();
    if (now - (slot.auditedAt.get(key) ?? 0) <= 1_000) return;
    slot.auditedAt.set(key, now);
    this.audit({ who: slot.policy.id, action: 'violation', resource: 'hub', result: 'denied', code, reason });
  }

  /** Take a declared method away from a plugin at once (calls in flight finish). */
  revoke(pluginId: string, method: string, who = 'operator', reason?: string): void {
    let set = this.revoked.get(pluginId);
    if (!set) this.revoked.set(pluginId, (set = new Set()));
    set.add(method);
    this.audit({ who, action: 'revoke', resource: `${pluginId}:${method}`, result: 'revoked', ...(reason ? { reason } : {}) });
  }

  /** The methods revoked from a plugin now: what a controller saves for its successor. */
  revokedMethods(pluginId: string): string[] {
    return [...(this.revoked.get(pluginId) ?? [])];
  }

  /** Give a revoked method back (it must still be declared in the manifest to be usable). */
  restore(pluginId: string, method: string, who = 'operator'): void {
    this.revoked.get(pluginId)?.delete(method);
    this.audit({ who, action: 'grant', resource: `${pluginId}:${method}`, result: 'granted' });
  }

  isRevoked(pluginId: string, method: string): boolean {
    return this.revoked.get(pluginId)?.has(method) === true;
  }

  private hello(peer: Peer, slot: PluginSlot, msg: Extract<ClientMessage, { type: 'hello' }>): void {
    if (msg.protocol !== PROTOCOL_VERSION) {
      return this.replyError(peer, msg.id, 'LM_PROTOCOL', `protocol ${msg.protocol} is not spoken here; supported: ${PROTOCOL_VERSION}`);
    }
    const undeclared = msg.methods.filter((m) => !slot.policy.exposes.has(m));
    if (undeclared.length) {
      this.audit({ who: slot.policy.id, action: 'hello', resource: undeclared.join(','), result: 'denied', code: 'LM_PERMISSION_DENIED', reason: 'methods not declared in exposesMethods' });
      return this.replyError(peer, msg.id, 'LM_PERMISSION_DENIED', `methods not listed under coordination.exposesMethods: ${undeclared.join(', ')}`);
    }
    slot.methods = [...msg.methods];
    slot.ready = true;
    peer.send({ type: 'response', id: this.nextId(), correlationId: msg.id, success: true, data: { plugin: slot.policy.id, protocol: PROTOCOL_VERSION } });
    this.log.debug({ plugin: slot.policy.id, methods: msg.methods, sdk: msg.sdk }, 'plugin ready');
    this.emit('ready', slot.policy.id, slot.methods);
  }

  private route(peer: Peer, msg: Exclude<ClientMessage, { type: 'hello' }>): void {
    switch (msg.type) {
      case 'request':
        return this.request(peer, msg);
      case 'response':
        return this.response(peer, msg);
      case 'event':
      case 'broadcast':
        return this.publish(peer, msg);
      case 'subscribe':
        peer.subscriptions.add(msg.topic);
        return peer.send({ type: 'response', id: this.nextId(), correlationId: msg.id, success: true, data: { topic: msg.topic } });
      case 'unsubscribe':
        peer.subscriptions.delete(msg.topic);
        return peer.send({ type: 'response', id: this.nextId(), correlationId: msg.id, success: true, data: { topic: msg.topic } });
    }
  }

  private policyOf(peer: Peer): PluginPolicy | 'host' {
    return peer.kind === 'host' ? HOST : (this.plugins.get(peer.id)?.policy ?? HOST);
  }

  private request(peer: Peer, msg: Request): void {
    const targetId = msg.to[0];
    const caller = this.policyOf(peer);
    const resource = targetId === HOST ? msg.method : `${targetId}.${msg.method}`;
    if (peer.kind === 'plugin' && this.isRevoked(peer.id, resource)) {
      return this.deny(peer, msg, 'LM_PERMISSION_DENIED', `the operator revoked '${resource}' from plugin ${peer.id}`);
    }
    if (targetId === HOST) {
      const d = decideCall(caller, HOST, msg.method, this.hostMethodNames);
      if (!d.allowed) return this.deny(peer, msg, d.code, d.reason);
      this.audit({ who: peer.id, action: 'call', resource, result: 'allowed' });
      return void this.invokeHost(peer, msg);
    }
    const slot = this.plugins.get(targetId);
    if (!slot) return this.replyError(peer, msg.id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${targetId} is not running`);
    const d = decideCall(caller, slot.policy, msg.method, this.hostMethodNames);
    if (!d.allowed) return this.deny(peer, msg, d.code, d.reason);
    if (!slot.peer || !slot.ready) return this.replyError(peer, msg.id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${targetId} is not connected`);
    if (peer.kind === 'plugin' && peer.inFlight >= this.maxInFlight) {
      return this.deny(peer, msg, 'LM_RATE_LIMITED', `plugin ${peer.id} already has ${this.maxInFlight} calls waiting for answers`);
    }
    this.audit({ who: peer.id, action: 'call', resource, result: 'allowed' });
    const timeout = Math.min(msg.timeout ?? DEFAULT_CALL_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS);
    const hubId = this.nextId();
    const timer = setTimeout(() => {
      // The target broke its side of the call: on its record (at most once a second).
      this.violation(slot, 'LM_TIMEOUT', `did not answer ${msg.method} from ${peer.id} within ${timeout} ms`);
      this.finish(hubId, fail('LM_TIMEOUT', `no response from ${targetId}.${msg.method} within ${timeout} ms`));
    }, timeout);
    this.pending.set(hubId, { caller: peer, callerId: msg.id, target: targetId, method: msg.method, timer });
    peer.inFlight++;
    slot.peer.send({ type: 'request', id: hubId, from: peer.id, to: [targetId], method: msg.method, data: msg.data, timeout, timestamp: Date.now() });
  }

  private deny(peer: Peer, msg: Request, code: ErrorCode, reason: string): void {
    this.log.warn({ from: peer.id, to: msg.to[0], method: msg.method, code }, `call refused: ${reason}`);
    this.audit({ who: peer.id, action: 'call', resource: msg.to[0] === HOST ? msg.method : `${msg.to[0]}.${msg.method}`, result: 'denied', code, reason });
    this.replyError(peer, msg.id, code, reason);
  }

  private async invokeHost(peer: Peer, msg: Request): Promise<void> {
    const handler = this.hostMethods.get(msg.method)!;
    try {
      const data = await handler(msg.data, { from: peer.id });
      peer.send({ type: 'response', id: this.nextId(), from: HOST, correlationId: msg.id, success: true, data, timestamp: Date.now() });
    } catch (err) {
      const e = err instanceof LogoMeshError ? { code: err.code, message: err.message, details: err.details } : { code: 'LM_PLUGIN_ERROR', message: String((err as Error)?.message ?? err) };
      peer.send({ type: 'response', id: this.nextId(), from: HOST, correlationId: msg.id, success: false, error: e, timestamp: Date.now() });
    }
  }

  private response(peer: Peer, msg: Response): void {
    const p = this.pending.get(msg.correlationId);
    // Only the plugin that was asked may answer; anything else is dropped, not delivered.
    if (!p || p.target !== peer.id) {
      this.log.debug({ from: peer.id, correlationId: msg.correlationId }, 'response to no open call of this peer dropped');
      return;
    }
    this.finish(msg.correlationId, msg.success ? { success: true, data: msg.data } : { success: false, error: msg.error! });
  }

  private finish(hubId: string, outcome: { success: true; data: unknown } | { success: false; error: WireError }): void {
    const p = this.pending.get(hubId);
    if (!p) return;
    this.pending.delete(hubId);
    clearTimeout(p.timer);
    p.caller.inFlight--;
    p.caller.send({ type: 'response', id: this.nextId(), from: p.target, correlationId: p.callerId, timestamp: Date.now(), ...outcome });
  }

  private publish(peer: Peer, msg: EventMsg | Broadcast): void {
    const d = decideMessaging(this.policyOf(peer));
    if (!d.allowed) {
      this.log.warn({ from: peer.id, type: msg.type }, d.reason);
      this.audit({ who: peer.id, action: msg.type, resource: msg.topic ?? '*', result: 'denied', code: d.code, reason: d.reason });
      return this.replyError(peer, msg.id, d.code, d.reason);
    }
    const out = { ...msg, id: this.nextId(), from: peer.id, timestamp: Date.now() } as EventMsg | Broadcast;
    const topic = msg.topic;
    const targets: Peer[] = [];
    if (msg.type === 'event' && msg.to) {
      for (const id of msg.to) {
        const t = id === HOST ? this.local : this.plugins.get(id)?.peer;
        if (t) targets.push(t);
      }
    } else {
      const everyone = [...[...this.plugins.values()].flatMap((s) => (s.peer && s.ready ? [s.peer] : [])), ...this.hostPeers, this.local];
      for (const t of everyone) {
        if (t === peer) continue;
        const subscribed = topic !== undefined && [...t.subscriptions].some((s) => topicMatches(s, topic));
        // A broadcast without a topic goes to everyone; anything with a topic to its subscribers.
        if (subscribed || (msg.type === 'broadcast' && topic === undefined && t !== this.local)) targets.push(t);
      }
    }
    for (const t of targets) {
      // A slow subscriber loses events rather than stall the hub or grow without bound.
      if (t.queued() > this.maxQueued) {
        t.dropped++;
        continue;
      }
      t.send(out);
    }
  }

  private replyError(peer: Peer, correlationId: string, code: ErrorCode, message: string): void {
    peer.send({ type: 'response', id: this.nextId(), correlationId, success: false, error: { code, message }, timestamp: Date.now() });
  }

  private nextId(): string {
    return `h${(++this.seq).toString(36)}`;
  }

  /** The host application itself, as a peer that never touches a socket. */
  private localPeer(): Peer {
    return {
      id: HOST,
      kind: 'host',
      subscriptions: new Set(),
      dropped: 0,
      inFlight: 0,
      queued: () => 0,
      send: (msg) => {
        if (msg.type === 'response') {
          const w = this.localWaiters.get(msg.correlationId);
          if (!w) return;
          this.localWaiters.delete(msg.correlationId);
          if (msg.success) w.resolve(msg.data);
          else w.reject(new LogoMeshError((msg.error?.code ?? 'LM_PLUGIN_ERROR') as ErrorCode, msg.error?.message ?? 'call failed', { details: msg.error?.details, remote: msg.from }));
        } else if (msg.type === 'event' || msg.type === 'broadcast') {
          const topic = msg.topic ?? '';
          for (const [pattern, handlers] of this.localSubs) {
            if (!topicMatches(pattern, topic)) continue;
            for (const h of handlers) h(msg.data, { from: msg.from ?? '?', topic });
          }
        }
      },
    };
  }
}

function fail(code: ErrorCode, message: string): { success: false; error: WireError } {
  return { success: false, error: { code, message } };
}

function isV1(req: IncomingMessage): boolean {
  return (req.url ?? '/').split('?')[0] === '/v1';
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Not Found'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\nConnection: close\r\n\r\n${text}\n`);
}
