import { EventEmitter } from 'node:events';
import type { RawData, WebSocket } from 'ws';
import { LogoMeshError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/audit-log.js';
import { AuditThrottle } from '../audit/audit-throttle.js';
import { decideSubscribe, mayReceive, type PluginPolicy, type TopicRevoked } from './acl.js';
import { Calls } from './calls.js';
import { authorize, compose, helloGate, HOLD_MS, rateLimit, schemaCheck, segmentHandles, senderCheck, type Handler, type Inbound, type IntakeContext } from './intake.js';
import { chooseEncoding } from './frames.js';
import { LocalHost, type TopicHandler } from './local-host.js';
import { WsPeer, type Peer, type PeerLimits } from './peer.js';
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_MESSAGE_BYTES, HOST, MAX_MAX_MESSAGE_BYTES, parseFrame, PROTOCOL_VERSION, type ClientMessage, type Hello } from './protocol.js';
import { PubSub } from './pubsub.js';
import { HostMethods, type HostMethod } from './host-methods.js';
import { RemoteHostMethods } from './remote-host-methods.js';
import { PluginAuthenticator, type PluginCredential } from './plugin-auth.js';
import { Transport } from './transport.js';
import type { HubOptions, HubStats, PluginSlot } from './hub-types.js';
import { Slots } from './slots.js';

export type { HostMethod } from './host-methods.js';
export type { PluginCredential } from './plugin-auth.js';
export type { CallObserver } from './calls.js';
export type { HubOptions, HubStats } from './hub-types.js';

/** How long calls to a plugin whose connection closed wait to learn why, at most. */
const EXIT_CAUSE_WAIT_MS = 2_000;

/** What a violation was, so that different ones with one code are not counted together. */
type ViolationKind = 'frame' | 'closed' | 'cut' | 'rate' | 'from' | 'timeout';

const NOT_REVOKED = (): boolean => false;

/** Misses of the hub's own pings after which a connection is dropped. */
const MAX_MISSED_PINGS = 2;

/**
 * The controller's message hub. Each plugin gets its own Unix socket, or on Kubernetes
 * proves its id with its own key at the TCP plugin port (`listenPlugins`), so the hub knows
 * who is speaking from the connection: `from` is always set here, never taken from a message.
 * Host clients connect over TCP with a token. A frame flows one way: transport, decode
 * (bounded in size and depth), the intake steps (intake.ts), then calls or pub/sub. No
 * exception on that path reaches the process: at worst it costs the sender its connection.
 * See docs/protocol.md.
 *
 * Events: 'ready' (pluginId, methods), 'disconnected' (pluginId); for a warm standby
 * (attachStandby): 'standby-ready' (pluginId) once its hello is held, 'standby-lost'
 * (pluginId) when its connection closes before it was switched in.
 */
export class Hub extends EventEmitter {
  private readonly log: Logger;
  private readonly maxBytes: number;
  /** Whose each connection point is: current, successor, retiring, standby. */
  private readonly slots: Slots;
  private readonly hostPeers = new Set<WsPeer>();
  private readonly local: LocalHost;
  private readonly transport: Transport;
  private readonly authenticator = new PluginAuthenticator((id) => this.slots.current.get(id)?.credential);
  private readonly throttle: AuditThrottle;
  private readonly audit: AuditSink;
  private readonly hostMethods = new HostMethods();
  private readonly remoteMethods: RemoteHostMethods;
  private readonly calls: Calls;
  private readonly pubsub: PubSub;
  private readonly intake: Handler;
  private readonly pluginLimits: PeerLimits;
  private readonly hostLimits: PeerLimits;
  private heartbeat: NodeJS.Timeout;
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: HubOptions) {
    super();
    this.slots = new Slots({
      log: opts.log.child({ component: 'hub' }),
      listen: (id, socketPath, slot) => this.transport.listenPlugin(id, socketPath, (ws) => this.acceptPlugin(slot, ws)),
      forget: (id) => this.authenticator.forget(id),
      peerGone: (slot, peer) => this.peerGone(slot, peer),
      admit: (peer, slot, hello) => this.admit(peer, slot, hello),
    });
    this.log = opts.log.child({ component: 'hub' });
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!(this.maxBytes >= 1024 && this.maxBytes <= MAX_MAX_MESSAGE_BYTES)) {
      throw new LogoMeshError('LM_USAGE', `the hub's maximum message size must be from 1024 to ${MAX_MAX_MESSAGE_BYTES} bytes (the most every SDK accepts), found ${this.maxBytes}`, { field: 'maxMessageBytes', expected: `1024 to ${MAX_MAX_MESSAGE_BYTES}`, found: String(this.maxBytes) });
    }
    const common = { maxQueuedBytes: opts.maxQueuedBytes ?? 8 * this.maxBytes, maxSubscriptions: opts.maxSubscriptions ?? 256, maxMessageBytes: this.maxBytes };
    this.pluginLimits = { ...common, rate: opts.rateLimit ?? 20_000, maxInFlight: opts.maxInFlight ?? 256 };
    this.hostLimits = { ...common, rate: opts.hostRateLimit ?? this.pluginLimits.rate, maxInFlight: opts.hostMaxInFlight ?? this.pluginLimits.maxInFlight };
    this.audit = opts.audit ?? (() => undefined);
    this.remoteMethods = new RemoteHostMethods(opts.hostMethods ?? []);
    // Declared names count as host methods for the ACL from the start; one nobody serves yet is unavailable, not unknown.
    for (const name of this.remoteMethods.declared) this.hostMethods.names.add(name);
    this.throttle = new AuditThrottle(this.audit, { onWrite: (e) => e.result === 'denied' && this.log.warn({ who: e.who, action: e.action, resource: e.resource, code: e.code, count: e.count }, e.reason ?? 'refused') });
    const nextId = () => this.nextId();
    this.transport = new Transport({
      log: this.log,
      token: opts.token,
      maxMessageBytes: this.maxBytes,
      maxHostClients: opts.maxHostClients ?? 64,
      socketOwner: opts.socketOwner,
      onRefused: (r) => this.throttle.record({ who: r.who, action: 'connect', resource: r.origin, result: 'denied', code: r.code, reason: r.reason }),
    });
    // Requests waiting on a plugin take at most half its queue, so that answers and requests
    // alone can never make the hub cut off a plugin that reads at its own pace.
    this.calls = new Calls({ maxMessageBytes: this.maxBytes, maxWaiting: opts.maxWaitingPerPlugin ?? 1_024, maxWaitingBytes: Math.floor(common.maxQueuedBytes / 2), nextId, blame: (id, code, reason) => this.violationOf(id, code, reason, 'timeout'), ...(opts.observeCall ? { observe: opts.observeCall } : {}) });
    this.pubsub = new PubSub({
      maxMessageBytes: this.maxBytes,
      nextId,
      peers: () => this.everyone(),
      peer: (id) => (id === HOST ? this.local : this.readyPeer(id)),
      // Checked at each delivery: what a plugin may not hear never reaches it, whatever it subscribed to before a revocation.
      mayReceive: (peer, topic) => peer.kind !== 'plugin' || this.pluginMayReceive(peer.id, topic),
    });
    // The application in this process is not limited: it is the one the limits protect.
    this.local = new LocalHost({ ...this.hostLimits, rate: Number.MAX_SAFE_INTEGER, maxInFlight: Number.MAX_SAFE_INTEGER }, (peer, msg) => this.dispatch(peer, undefined, msg), nextId, (topic, err) => this.log.error({ topic, err: String(err) }, 'a host subscriber threw'));
    this.intake = compose([rateLimit(this.context()), helloGate(this.context()), senderCheck(this.context()), authorize(this.context()), schemaCheck(this.context()), segmentHandles(this.context())], (f) => this.route(f));
    this.heartbeat = setInterval(() => this.heartbeatTick(), opts.pingIntervalMs ?? 10_000);
    this.heartbeat.unref();
  }

  /** Listen for host clients on TCP; returns the port. */
  listenHost(port = 0, host = '127.0.0.1'): Promise<number> {
    return this.transport.listenHost(port, host, (ws, origin) => this.acceptHost(ws, origin));
  }

  /**
   * Listen for plugins that reach the hub over TCP (on Kubernetes, across nodes); returns the
   * port. Only plugins attached with `attachRemotePlugin` may connect here, each with a fresh
   * HMAC of its own key (docs/kubernetes.md#the-hub-across-nodes); once upgraded, the
   * connection is that plugin's exactly as its Unix socket would be.
   */
  listenPlugins(port = 0, host = '0.0.0.0'): Promise<number> {
    return this.transport.listenPlugins(
      port,
      host,
      (req, address) => this.authenticator.check(req.headers.authorization, address),
      (ws, id, origin) => {
        const slot = this.slots.current.get(id);
        // Detached while its handshake was checked.
        if (!slot?.credential) return void ws.terminate();
        this.acceptPlugin(slot, ws, origin);
      },
    );
  }

  // --- connection points (slots.ts owns them) ----------------------------------------------

  /** Open the socket a plugin will connect to. Its folder must exist only for this plugin. */
  attachPlugin(policy: PluginPolicy, socketPath: string): Promise<void> {
    return this.slots.attachPlugin(policy, socketPath);
  }

  /** Open a replacement's socket; calls move to it at its hello, with none failed (Slots.attachSuccessor). */
  attachSuccessor(policy: PluginPolicy, socketPath: string): Promise<void> {
    return this.slots.attachSuccessor(policy, socketPath);
  }

  /** Let a plugin connect over TCP (listenPlugins) with its own key. */
  attachRemotePlugin(policy: PluginPolicy, credential: PluginCredential): void {
    this.slots.attachRemotePlugin(policy, credential);
  }

  /** Close a plugin's socket and connection (and its standby's); its open calls fail with LM_PLUGIN_EXITED. */
  detachPlugin(id: string): Promise<void> {
    return this.slots.detachPlugin(id);
  }

  /** Give up a replacement that did not say hello: the current connection keeps serving. */
  detachSuccessor(id: string): Promise<void> {
    return this.slots.detachSuccessor(id);
  }

  /** Close a replaced plugin's old connection; calls it still has fail with LM_PLUGIN_EXITED. */
  detachRetiring(id: string): Promise<void> {
    return this.slots.detachRetiring(id);
  }

  /** Open a warm standby's connection point; its hello is held until switchToStandby (Slots.attachStandby). */
  attachStandby(id: string, socketPath: string): Promise<void> {
    return this.slots.attachStandby(id, socketPath);
  }

  /** Close a plugin's standby connection point and connection (the standby container is the caller's). */
  detachStandby(id: string): Promise<void> {
    return this.slots.detachStandby(id);
  }

  /** Has the plugin's standby said hello (it can be switched in at once)? */
  standbyWaiting(id: string): boolean {
    return this.slots.standbyWaiting(id);
  }

  /** Switch a plugin to its standby in this turn; false, with nothing changed, when it cannot be (Slots.switchToStandby). */
  switchToStandby(id: string): boolean {
    return this.slots.switchToStandby(id);
  }

  /** Ask a plugin to shut down (it finishes in-flight calls, then exits). */
  requestShutdown(id: string, graceMs: number): boolean {
    return this.shutdownPeer(this.slots.current.get(id)?.peer, graceMs);
  }

  /** Ask a replaced plugin's old connection to shut down: it has no new calls since the handover, and finishes those it has. */
  retire(id: string, graceMs: number): boolean {
    return this.shutdownPeer(this.slots.retiringSlot(id)?.peer, graceMs);
  }

  /** Calls still waiting on a replaced plugin's old connection. */
  retiringCalls(id: string): number {
    return this.slots.retiringSlot(id)?.target?.waiting ?? 0;
  }

  /** Health check: true when the plugin answers this very ping within `timeoutMs`. A stopped or wedged process cannot. */
  ping(id: string, timeoutMs: number): Promise<boolean> {
    return this.slots.current.get(id)?.peer?.probe(timeoutMs) ?? Promise.resolve(false);
  }

  isReady(id: string): boolean {
    return this.slots.current.get(id)?.ready === true;
  }

  stats(id: string): HubStats | undefined {
    const slot = this.slots.current.get(id);
    if (!slot) return undefined;
    return { connected: !!slot.peer, ready: slot.ready, methods: slot.methods, droppedMessages: slot.peer?.dropped ?? 0, encoding: slot.peer?.binary ? 'msgpack' : 'json' };
  }

  /** Serve a host method that plugins may call (when their manifest consumes it). */
  registerHostMethod(name: string, handler: HostMethod): void {
    this.hostMethods.register(name, handler);
  }

  /** Call a plugin method as the host application. Rejects with the coded error. */
  call(target: string, method: string, data: unknown, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<unknown> {
    return this.local.call(target, method, data, timeoutMs);
  }

  /** Receive events and broadcasts of a topic as the host; returns the unsubscribe function. */
  subscribe(topic: string, handler: TopicHandler): () => void {
    return this.local.subscribe(topic, handler);
  }

  emitEvent(topic: string, data: unknown, to?: string[]): void {
    this.local.emitEvent(topic, data, to);
  }

  /**
   * An event of the controller's own (such as a resource violation), from the host: to every
   * subscriber allowed to hear it, and to the host application in this process too, whose
   * own emitEvent does not come back to it.
   */
  announce(topic: string, data: unknown): void {
    this.local.emitEvent(topic, data);
    this.local.deliver({ type: 'event', id: this.nextId(), from: HOST, topic, data, timestamp: Date.now() });
  }

  broadcast(topic: string | undefined, data: unknown): void {
    this.local.broadcast(topic, data);
  }

  /**
   * Write the aggregated counts of decisions made so far: called before a change of what is
   * revoked is audited, so that the trail keeps the order of decisions and changes.
   */
  flushAudit(): void {
    this.throttle.flush();
  }

  private readonly topicRevoked: TopicRevoked = (pluginId, pattern) => this.opts.isTopicRevoked?.(pluginId, pattern) === true;

  private pluginMayReceive(id: string, topic: string): boolean {
    const policy = this.slots.current.get(id)?.policy;
    return policy !== undefined && mayReceive(policy, topic, this.topicRevoked);
  }

  /** Close every socket and fail every open call. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.slots.closeAll();
    for (const peer of this.hostPeers) peer.ws.terminate();
    this.local.failAll('LM_PLUGIN_UNAVAILABLE', 'the hub closed');
    await this.transport.close();
    this.throttle.close();
  }

  // --- connections -------------------------------------------------------------------------

  private acceptPlugin(slot: PluginSlot, ws: WebSocket, origin = 'unix'): void {
    const id = slot.policy.id;
    if (slot.peer) {
      this.log.warn({ plugin: id }, 'a second connection replaces the first');
      const old = slot.peer;
      slot.peer = undefined;
      old.ws.terminate();
      this.peerGone(slot, old);
    }
    const peer = new WsPeer(id, 'plugin', origin, ws, this.pluginLimits, (p, code, reason) => this.cutOff(p, code, reason));
    slot.peer = peer;
    slot.target = { id, peer, waiting: 0, waitingBytes: 0 };
    slot.ready = false;
    ws.on('message', (raw: RawData, isBinary: boolean) => this.onFrame(peer, slot, raw as Buffer, isBinary));
    ws.on('close', () => {
      if (slot.peer !== peer) return;
      slot.peer = undefined;
      slot.ready = false;
      delete slot.heldHello;
      const primary = this.slots.current.get(id) === slot;
      this.peerGone(slot, peer, primary);
      // A retiring or not yet promoted connection is not the plugin's: its end says nothing of the plugin.
      if (primary) this.emit('disconnected', id);
      else if (this.slots.current.get(id)?.standby === slot) this.emit('standby-lost', id);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.log.debug({ plugin: id, err: err.message }, 'plugin socket error');
      // ws closes the connection after this (1009 for a frame over the hard limit, 1002/1007 otherwise).
      const code: ErrorCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'LM_MESSAGE_TOO_LARGE' : 'LM_PROTOCOL';
      this.violation(peer, code, `connection closed: ${err.message}`, 'closed');
    });
  }

  private acceptHost(ws: WebSocket, origin: string): void {
    const peer = new WsPeer(HOST, 'host', origin, ws, this.hostLimits, (p, code, reason) => this.cutOff(p, code, reason));
    this.hostPeers.add(peer);
    ws.on('message', (raw: RawData, isBinary: boolean) => this.onFrame(peer, undefined, raw as Buffer, isBinary));
    ws.on('close', () => {
      this.hostPeers.delete(peer);
      this.calls.callerGone(peer);
      const served = this.remoteMethods.drop(peer);
      if (served) this.calls.targetGone(served, `(the host application at ${peer.origin}) disconnected`);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      const code: ErrorCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'LM_MESSAGE_TOO_LARGE' : 'LM_PROTOCOL';
      this.violation(peer, code, `connection closed: ${err.message}`, 'closed');
    });
  }

  private heartbeatTick(): void {
    for (const slot of this.slots.current.values()) {
      slot.peer?.heartbeat(MAX_MISSED_PINGS);
      slot.standby?.peer?.heartbeat(MAX_MISSED_PINGS);
    }
    for (const peer of this.hostPeers) peer.heartbeat(MAX_MISSED_PINGS);
  }

  /** The hub closed a connection itself (a peer that does not read, or does not answer pings). */
  private cutOff(peer: Peer, code: ErrorCode, reason: string): void {
    this.violation(peer, code, `connection closed by the hub: ${reason}`, 'cut');
  }

  private shutdownPeer(peer: WsPeer | undefined, graceMs: number): boolean {
    if (!peer) return false;
    peer.deliver({ type: 'shutdown', id: this.nextId(), data: { graceMs } });
    return true;
  }

  /**
   * A plugin's connection went away: calls to it fail (at once, or, when it closed by
   * itself, once the controller says why: `askWhy`), calls from it are forgotten. No new
   * call reaches it from this moment.
   */
  private peerGone(slot: PluginSlot, peer: WsPeer | undefined, askWhy = false): void {
    const target = slot.target;
    if (target && (!peer || target.peer === peer)) {
      slot.target = undefined;
      const cause = askWhy && target.waiting > 0 ? this.opts.exitCause?.(slot.policy.id) : undefined;
      if (!cause) this.calls.targetGone(target, 'exited or disconnected');
      else {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), EXIT_CAUSE_WAIT_MS)));
        void Promise.race([cause.catch(() => undefined), late]).then((c) => {
          clearTimeout(timer);
          this.calls.targetGone(target, 'exited or disconnected', c);
        });
      }
    }
    if (peer) this.calls.callerGone(peer);
  }

  // --- messages ---------------------------------------------------------------------------

  private onFrame(peer: WsPeer, slot: PluginSlot | undefined, raw: Buffer, isBinary: boolean): void {
    // Frames a closing connection had already buffered are not this hub's business any more.
    if (this.closed) return;
    try {
      const parsed = parseFrame(raw, isBinary, this.maxBytes, peer.binary);
      if (parsed.ok) return this.intake({ peer, slot, msg: parsed.msg, claimedFrom: parsed.claimedFrom });
      // A refused answer still settles its call (and is on the sender's record).
      if (parsed.answers && this.calls.answerRefused(peer, parsed.answers, parsed.error)) return this.violation(peer, parsed.error.code as ErrorCode, `answer refused: ${parsed.error.message}`, 'frame');
      // Garbage costs a token like any message, so it cannot be sent faster than the limit.
      if (!peer.bucket.take()) {
        if (peer.kind === 'host') peer.hold(HOLD_MS);
        return this.violation(peer, 'LM_RATE_LIMITED', `more than ${peer.bucket.rate} messages/s`, 'rate');
      }
      peer.deliver({ type: 'error', id: this.nextId(), ...(parsed.id ? { correlationId: parsed.id } : {}), error: parsed.error });
      this.violation(peer, parsed.error.code as ErrorCode, `frame refused: ${parsed.error.message}`, 'frame');
    } catch (err) {
      // A bug of ours must not stop the controller: the sender loses its connection, and we say so.
      this.log.error({ from: peer.id, origin: peer.origin, err: err instanceof Error ? err.stack : String(err) }, 'the hub failed on a frame; the sender was disconnected');
      peer.cut('LM_INTERNAL', `the hub failed on a frame from it: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
    }
  }

  /** Messages made in this process (the host application) take the same steps as a client's. */
  private dispatch(peer: Peer, slot: PluginSlot | undefined, msg: ClientMessage): void {
    this.intake({ peer, slot, msg });
  }

  private route(f: Inbound): void {
    const { peer, msg } = f;
    this.opts.observeMessage?.(msg.type, peer.id);
    switch (msg.type) {
      case 'request': {
        const resource = msg.to[0] === HOST ? msg.method : `${msg.to[0]}.${msg.method}`;
        if (msg.to[0] === HOST) {
          if (this.hostMethods.serves(msg.method)) {
            this.allowed(peer, resource);
            return void this.hostMethods.invoke(peer, msg, this.maxBytes, () => this.nextId());
          }
          const served = this.remoteMethods.targetOf(msg.method);
          if (!served) return this.refuse(f, 'call', resource, 'LM_PLUGIN_UNAVAILABLE', `no host application serves the host method '${msg.method}' now`);
          const refusedHost = this.calls.open(peer, msg, served);
          if (refusedHost) this.refuse(f, 'call', resource, refusedHost.code, refusedHost.message);
          else this.allowed(peer, resource);
          return;
        }
        const target = this.slots.current.get(msg.to[0])?.target;
        if (!target || !this.slots.current.get(msg.to[0])?.ready) return this.replyError(peer, msg.id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${msg.to[0]} is not connected`);
        const refused = this.calls.open(peer, msg, target);
        // Audited once, as what happened: sent on (allowed), or refused by a limit.
        if (refused) this.refuse(f, 'call', resource, refused.code, refused.message);
        else this.allowed(peer, resource);
        return;
      }
      case 'response':
        if (!this.calls.answer(peer, msg)) this.log.debug({ from: peer.id, correlationId: msg.correlationId }, 'response to no open call of this peer dropped');
        return;
      case 'event':
      case 'broadcast':
        this.pubsub.publish(peer, msg);
        if (msg.ack) this.ok(peer, msg.id, { topic: msg.topic ?? null });
        return;
      case 'subscribe':
        if (!this.pubsub.subscribe(peer, msg.topic)) {
          return this.refuse(f, 'subscribe', msg.topic, 'LM_HUB_LIMIT', `${peer.id} (${peer.origin}) already has ${peer.limits.maxSubscriptions} subscriptions, the most the hub keeps for one connection`);
        }
        return this.ok(peer, msg.id, { topic: msg.topic });
      case 'unsubscribe':
        this.pubsub.unsubscribe(peer, msg.topic);
        return this.ok(peer, msg.id, { topic: msg.topic });
      case 'segment':
        return this.segmentRequest(f);
      case 'register':
        if (!(peer instanceof WsPeer) || peer.kind !== 'host') return this.replyError(peer, msg.id, 'LM_PROTOCOL', 'only host clients on the TCP endpoint register host methods');
        try {
          this.remoteMethods.register(peer, msg.methods, (name) => this.hostMethods.serves(name));
        } catch (err) {
          const e = err as LogoMeshError;
          return this.refuse(f, 'register', msg.methods.join(',').slice(0, 200), e.code, e.message);
        }
        this.audit({ who: HOST, action: 'register', resource: msg.methods.join(',').slice(0, 200), result: 'allowed', reason: `host client ${peer.origin}` });
        return this.ok(peer, msg.id, { methods: msg.methods });
      case 'hello':
        return; // answered by the hello gate
    }
  }

  /** A plugin's `segment` message, answered with the pool's result or its coded error (the pool audits). */
  private segmentRequest(f: Inbound): void {
    const { peer, msg } = f;
    if (msg.type !== 'segment' || !this.opts.segments) return;
    this.opts.segments.request(peer.id, msg).then(
      (data) => this.ok(peer, msg.id, data),
      (err: unknown) => {
        const e = err instanceof LogoMeshError ? err : undefined;
        this.replyError(peer, msg.id, e?.code ?? 'LM_INTERNAL', e?.message ?? String((err as Error)?.message ?? err).slice(0, 300));
      },
    );
  }

  private hello(peer: Peer, slot: PluginSlot, msg: Hello): void {
    if (msg.protocol !== PROTOCOL_VERSION) {
      return this.replyError(peer, msg.id, 'LM_PROTOCOL', `protocol ${msg.protocol} is not spoken here; supported: ${PROTOCOL_VERSION}`);
    }
    const undeclared = msg.methods.filter((m) => !slot.policy.exposes.has(m));
    if (undeclared.length) {
      this.audit({ who: slot.policy.id, action: 'hello', resource: undeclared.join(',').slice(0, 200), result: 'denied', code: 'LM_PERMISSION_DENIED', reason: 'methods not declared in exposesMethods' });
      return this.replyError(peer, msg.id, 'LM_PERMISSION_DENIED', `methods not listed under coordination.exposesMethods: ${undeclared.join(', ')}`);
    }
    const topics = msg.subscriptions ?? [];
    if (topics.length > peer.limits.maxSubscriptions) {
      return this.replyError(peer, msg.id, 'LM_HUB_LIMIT', `hello asks for ${topics.length} subscriptions; the hub keeps at most ${peer.limits.maxSubscriptions} for one connection`);
    }
    // Only what the manifest does not declare refuses hello. A topic the operator revoked is
    // subscribed all the same: every delivery is checked against the revocations, so it
    // hears nothing while revoked and hears again once granted, and the plugin is not stopped
    // for what the operator chose.
    const refused = topics.map((t) => decideSubscribe(slot.policy, t, NOT_REVOKED)).filter((d) => !d.allowed);
    if (refused.length) {
      const reasons = refused.map((d) => (d.allowed ? '' : d.reason)).join('; ');
      this.audit({ who: slot.policy.id, action: 'hello', resource: topics.join(',').slice(0, 200), result: 'denied', code: 'LM_PERMISSION_DENIED', reason: reasons.slice(0, 256) });
      return this.replyError(peer, msg.id, 'LM_PERMISSION_DENIED', reasons);
    }
    // A standby's hello waits, unanswered, until it is switched in (its SDK waits without a timeout).
    // A replacement's (a successor slot) is answered: that is the handover (promote).
    if (this.slots.current.get(slot.policy.id)?.standby === slot) {
      slot.heldHello = msg;
      this.log.debug({ plugin: slot.policy.id, sdk: msg.sdk }, 'standby waiting');
      this.emit('standby-ready', slot.policy.id);
      return;
    }
    this.admit(peer, slot, msg);
  }

  /** A checked hello answered: the plugin is ready on this connection. */
  private admit(peer: Peer, slot: PluginSlot, msg: Hello): void {
    for (const t of msg.subscriptions ?? []) this.pubsub.subscribe(peer, t);
    slot.methods = [...msg.methods];
    slot.ready = true;
    if (this.slots.isSuccessor(slot)) this.slots.promote(slot);
    const encoding = chooseEncoding(msg.encodings);
    // The answer itself is JSON text: the plugin switches once it has read it.
    this.ok(peer, msg.id, { plugin: slot.policy.id, protocol: PROTOCOL_VERSION, maxMessageBytes: this.maxBytes, encoding });
    if (peer instanceof WsPeer) peer.binary = encoding === 'msgpack';
    this.log.debug({ plugin: slot.policy.id, methods: msg.methods, sdk: msg.sdk }, 'plugin ready');
    this.emit('ready', slot.policy.id, slot.methods);
  }

  private context(): IntakeContext {
    return {
      hostMethods: this.hostMethods.names,
      target: (id) => this.slots.current.get(id),
      isRevoked: (pluginId, resource) => this.opts.isMethodRevoked?.(pluginId, resource) === true,
      topicRevoked: this.topicRevoked,
      replyError: (peer, correlationId, code, message) => this.replyError(peer, correlationId, code, message),
      refuse: (f, action, resource, code, reason) => this.refuse(f, action, resource, code, reason),
      violation: (peer, code, reason, kind) => this.violation(peer, code, reason, kind),
      hello: (peer, slot, msg) => this.hello(peer, slot as PluginSlot, msg),
      segments: this.opts.segments,
      callerOf: (peer, correlationId) => this.calls.openCall(peer, correlationId)?.caller,
      methodOf: (peer, correlationId) => this.calls.openCall(peer, correlationId)?.method,
      deny: (who, action, resource, code, reason) => this.throttle.record({ who, action, resource, result: 'denied', code, reason }),
    };
  }

  private allowed(peer: Peer, resource: string): void {
    this.throttle.record({ who: peer.id, action: 'call', resource, result: 'allowed' });
  }

  private refuse(f: Inbound, action: string, resource: string, code: ErrorCode, reason: string): void {
    this.throttle.record({ who: f.peer.id, action, resource, result: 'denied', code, reason });
    if (f.msg.type === 'request') this.opts.observeCall?.(f.peer.id, f.msg.to[0] ?? '', f.msg.method, 0, code);
    this.replyError(f.peer, f.msg.id, code, reason);
  }

  /** A peer broke the protocol or a limit: on its record, aggregated (a flood costs a few lines a second). */
  private violation(peer: Peer, code: ErrorCode, reason: string, kind: ViolationKind): void {
    const where = peer.kind === 'host' ? ` (host client ${peer.origin})` : '';
    this.violationOf(peer.id, code, `${reason}${where}`, kind);
  }

  private violationOf(who: string, code: ErrorCode, reason: string, kind: ViolationKind): void {
    this.throttle.record({ who, action: 'violation', resource: 'hub', result: 'denied', code, reason }, kind);
  }

  private replyError(peer: Peer, correlationId: string, code: ErrorCode, message: string): void {
    peer.deliver({ type: 'response', id: this.nextId(), correlationId, success: false, error: { code, message }, timestamp: Date.now() });
  }

  private ok(peer: Peer, correlationId: string, data: unknown): void {
    peer.deliver({ type: 'response', id: this.nextId(), correlationId, success: true, data });
  }

  private readyPeer(id: string): Peer | undefined {
    const slot = this.slots.current.get(id);
    return slot?.ready ? slot.peer : undefined;
  }

  private *everyone(): Iterable<Peer> {
    for (const s of this.slots.current.values()) if (s.peer && s.ready) yield s.peer;
    yield* this.hostPeers;
    yield this.local;
  }

  private nextId(): string {
    return `h${(++this.seq).toString(36)}`;
  }
}

/** Stop listening on a slot's socket and remove the socket file. */
