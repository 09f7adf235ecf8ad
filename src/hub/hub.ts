import { EventEmitter } from 'node:events';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/audit-log.js';
import { AuditThrottle } from '../audit/audit-throttle.js';
import { mayReceive, type PluginPolicy, type TopicRevoked } from './acl.js';
import { Admission } from './admission.js';
import { Calls } from './calls.js';
import { metricsFromCallbacks } from './hub-metrics.js';
import { Connections } from './connections.js';
import { authorize, compose, helloGate, HOLD_MS, rateLimit, schemaCheck, segmentHandles, senderCheck, type Handler, type IntakeContext } from './intake.js';
import { LocalHost, type TopicHandler } from './local-host.js';
import { MAX_BATCH_FRAMES, splitFrames } from './line-batch.js';
import type { WsPeer, Peer } from './peer.js';
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_MESSAGE_BYTES, HOST, parseFrame, type ClientMessage, type Parsed } from './protocol.js';
import { parseBatch } from './batch-parse.js';
import { checkedMaxBytes, peerLimits } from './hub-limits.js';
import { PubSub } from './pubsub.js';
import { HostMethods, type HostMethod } from './host-methods.js';
import { RemoteHostMethods } from './remote-host-methods.js';
import { PluginAuthenticator, type PluginCredential } from './plugin-auth.js';
import { Router } from './router.js';
import { Transport } from './transport.js';
import type { HubOptions, HubStats, PluginSlot } from './hub-types.js';
import { Slots } from './slots.js';
import { Verdicts } from './verdicts.js';

export type { HostMethod } from './host-methods.js';
export type { PluginCredential } from './plugin-auth.js';
export type { CallObserver } from './calls.js';
export type { HubOptions, HubStats } from './hub-types.js';

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
  private readonly connections: Connections;
  private readonly local: LocalHost;
  private readonly transport: Transport;
  private readonly authenticator = new PluginAuthenticator((id) => this.slots.current.get(id)?.credential);
  private readonly throttle: AuditThrottle;
  private readonly verdicts: Verdicts;
  private readonly hostMethods = new HostMethods();
  private readonly remoteMethods: RemoteHostMethods;
  private readonly calls: Calls;
  private readonly pubsub: PubSub;
  private readonly admission: Admission;
  private readonly intake: Handler;
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: HubOptions) {
    super();
    this.log = opts.log.child({ component: 'hub' });
    this.maxBytes = checkedMaxBytes(opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
    const { plugin: pluginLimits, host: hostLimits } = peerLimits(opts, this.maxBytes);
    const audit: AuditSink = opts.audit ?? (() => undefined);
    const nextId = (): string => this.nextId();
    this.slots = new Slots({
      log: this.log,
      listen: (id, socketPath, slot) => this.transport.listenPlugin(id, socketPath, (ws) => this.connections.acceptPlugin(slot, ws)),
      forget: (id) => this.authenticator.forget(id),
      peerGone: (slot, peer) => this.connections.peerGone(slot, peer),
      admit: (peer, slot, hello) => this.admission.admit(peer, slot, hello),
    });
    this.remoteMethods = new RemoteHostMethods(opts.hostMethods ?? []);
    // Declared names count as host methods for the ACL from the start; one nobody serves yet is unavailable, not unknown.
    for (const name of this.remoteMethods.declared) this.hostMethods.names.add(name);
    this.throttle = new AuditThrottle(audit, { onWrite: (e) => e.result === 'denied' && this.log.warn({ who: e.who, action: e.action, resource: e.resource, code: e.code, count: e.count }, e.reason ?? 'refused') });
    const metrics = opts.metrics ?? metricsFromCallbacks(opts.observeCall, opts.observeMessage);
    this.verdicts = new Verdicts({ throttle: this.throttle, nextId, metrics });
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
    this.calls = new Calls({ maxMessageBytes: this.maxBytes, maxWaiting: opts.maxWaitingPerPlugin ?? 1_024, maxWaitingBytes: Math.floor(pluginLimits.maxQueuedBytes / 2), nextId, blame: (id, code, reason) => this.verdicts.violationOf(id, code, reason, 'timeout'), metrics });
    this.pubsub = new PubSub({
      maxMessageBytes: this.maxBytes,
      nextId,
      peers: () => this.everyone(),
      peer: (id) => (id === HOST ? this.local : this.readyPeer(id)),
      // Checked at each delivery: what a plugin may not hear never reaches it, whatever it subscribed to before a revocation.
      mayReceive: (peer, topic) => peer.kind !== 'plugin' || this.pluginMayReceive(peer.id, topic),
    });
    this.connections = new Connections({
      log: this.log, slots: this.slots, calls: this.calls, remoteMethods: this.remoteMethods, verdicts: this.verdicts, pluginLimits, hostLimits, nextId,
      pingIntervalMs: opts.pingIntervalMs ?? 10_000,
      exitCause: opts.exitCause,
      onFrame: (peer, slot, raw, isBinary) => this.onFrame(peer, slot, raw, isBinary),
      onClosed: (event, id) => this.emit(event, id),
    });
    this.admission = new Admission({ log: this.log, slots: this.slots, pubsub: this.pubsub, verdicts: this.verdicts, audit, maxBytes: this.maxBytes, emit: (event, id, methods) => (methods ? this.emit(event, id, methods) : this.emit(event, id)) });
    const router = new Router({ log: this.log, slots: this.slots, calls: this.calls, pubsub: this.pubsub, hostMethods: this.hostMethods, remoteMethods: this.remoteMethods, verdicts: this.verdicts, audit, maxBytes: this.maxBytes, nextId, segments: opts.segments, metrics });
    // The application in this process is not limited: it is the one the limits protect.
    this.local = new LocalHost({ ...hostLimits, rate: Number.MAX_SAFE_INTEGER, maxInFlight: Number.MAX_SAFE_INTEGER }, (peer, msg) => this.dispatch(peer, msg), nextId, (topic, err) => this.log.error({ topic, err: String(err) }, 'a host subscriber threw'));
    const cx = this.context();
    this.intake = compose([rateLimit(cx), helloGate(cx), senderCheck(cx), authorize(cx), schemaCheck(cx), segmentHandles(cx)], (f) => router.route(f));
  }

  /** Listen for host clients on TCP; returns the port. */
  listenHost(port = 0, host = '127.0.0.1'): Promise<number> {
    return this.transport.listenHost(port, host, (ws, origin) => this.connections.acceptHost(ws, origin));
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
        this.connections.acceptPlugin(slot, ws, origin);
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
    return this.connections.shutdown(this.slots.current.get(id)?.peer, graceMs);
  }

  /** Is the plugin's current connection to the hub still open? */
  connected(id: string): boolean {
    return this.slots.current.get(id)?.peer?.open === true;
  }

  /** Ask a replaced plugin's old connection to shut down: it has no new calls since the handover, and finishes those it has. */
  retire(id: string, graceMs: number): boolean {
    return this.connections.shutdown(this.slots.retiringSlot(id)?.peer, graceMs);
  }

  /** Is a replaced plugin's old connection still open? */
  retiringConnected(id: string): boolean {
    return this.slots.retiringSlot(id)?.peer?.open === true;
  }

  /** Calls still waiting on a replaced plugin's old connection. */
  retiringCalls(id: string): number {
    return this.slots.retiringSlot(id)?.target?.waiting ?? 0;
  }

  /** Health check: true when the plugin answers this very ping within `timeoutMs`. A stopped or wedged process cannot. */
  ping(id: string, timeoutMs: number): Promise<boolean> {
    return this.slots.current.get(id)?.peer?.probe(timeoutMs) ?? Promise.resolve(false);
  }

  /** Whether the plugin answered one of its open calls in the last `ms`: alive then, as an answered health ping would show. */
  answeredWithin(id: string, ms: number): boolean {
    const at = this.slots.current.get(id)?.peer?.lastAnswerAt;
    return at !== undefined && performance.now() - at <= ms;
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
    await this.slots.closeAll();
    this.connections.close();
    this.local.failAll('LM_PLUGIN_UNAVAILABLE', 'the hub closed');
    this.calls.close();
    await this.transport.close();
    this.throttle.close();
  }

  // --- messages ---------------------------------------------------------------------------

  private onFrame(peer: WsPeer, slot: PluginSlot | undefined, raw: Buffer, isBinary: boolean): void {
    // Frames a closing connection had already buffered are not this hub's business any more.
    if (this.closed) return;
    // A batch over the size limit is refused whole, as one oversize frame (parseFrame says so).
    if (peer.lines && !isBinary && raw.length <= this.maxBytes && raw.indexOf(0x0a) !== -1) return this.onBatch(peer, slot, raw);
    this.onOneFrame(peer, slot, raw, isBinary);
  }

  /** Several frames in one message, from a plugin that agreed to batch: each takes the way of a frame of its own. */
  private onBatch(peer: WsPeer, slot: PluginSlot | undefined, raw: Buffer): void {
    // Parsed at once when every frame is a sound object (batch-parse.ts); else one by one, as alone.
    let all: Parsed[] | undefined;
    try {
      all = parseBatch(raw);
    } catch {
      all = undefined;
    }
    if (all) {
      for (const parsed of all) {
        if (!peer.open) return; // cut off by a frame before this one
        this.onParsed(peer, slot, parsed);
      }
      return;
    }
    const frames = splitFrames(raw);
    if (frames.length > MAX_BATCH_FRAMES) {
      if (!peer.bucket.take()) return this.verdicts.violation(peer, 'LM_RATE_LIMITED', `more than ${peer.bucket.rate} messages/s`, 'rate');
      const error = { code: 'LM_PROTOCOL', message: `a batched message holds at most ${MAX_BATCH_FRAMES} frames; this one held more` };
      peer.deliver({ type: 'error', id: this.nextId(), error });
      return this.verdicts.violation(peer, 'LM_PROTOCOL', `frame refused: ${error.message}`, 'frame');
    }
    for (const f of frames) {
      if (!peer.open) return; // cut off by a frame before this one
      this.onOneFrame(peer, slot, f, false);
    }
  }

  private onOneFrame(peer: WsPeer, slot: PluginSlot | undefined, raw: Buffer, isBinary: boolean): void {
    let parsed: Parsed;
    try {
      parsed = parseFrame(raw, isBinary, this.maxBytes, peer.binary);
    } catch (err) {
      return this.failed(peer, err);
    }
    this.onParsed(peer, slot, parsed);
  }

  /** A frame parsed (or refused): on through the intake steps, or answered with its error. */
  private onParsed(peer: WsPeer, slot: PluginSlot | undefined, parsed: Parsed): void {
    try {
      if (parsed.ok) return this.intake({ peer, slot, msg: parsed.msg, claimedFrom: parsed.claimedFrom, rawData: parsed.rawData });
      // A refused answer still settles its call (and is on the sender's record).
      if (parsed.answers && this.calls.answerRefused(peer, parsed.answers, parsed.error)) return this.verdicts.violation(peer, parsed.error.code as ErrorCode, `answer refused: ${parsed.error.message}`, 'frame');
      // Garbage costs a token like any message, so it cannot be sent faster than the limit.
      if (!peer.bucket.take()) {
        if (peer.kind === 'host') peer.hold(HOLD_MS);
        return this.verdicts.violation(peer, 'LM_RATE_LIMITED', `more than ${peer.bucket.rate} messages/s`, 'rate');
      }
      peer.deliver({ type: 'error', id: this.nextId(), ...(parsed.id ? { correlationId: parsed.id } : {}), error: parsed.error });
      this.verdicts.violation(peer, parsed.error.code as ErrorCode, `frame refused: ${parsed.error.message}`, 'frame');
    } catch (err) {
      this.failed(peer, err);
    }
  }

  /** A bug of ours must not stop the controller: the sender loses its connection, and we say so. */
  private failed(peer: WsPeer, err: unknown): void {
    this.log.error({ from: peer.id, origin: peer.origin, err: err instanceof Error ? err.stack : String(err) }, 'the hub failed on a frame; the sender was disconnected');
    peer.cut('LM_INTERNAL', `the hub failed on a frame from it: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
  }

  /** Messages made in this process (the host application) take the same steps as a client's. */
  private dispatch(peer: Peer, msg: ClientMessage): void {
    this.intake({ peer, slot: undefined, msg });
  }

  private context(): IntakeContext {
    return {
      hostMethods: this.hostMethods.names,
      target: (id) => this.slots.current.get(id),
      isRevoked: (pluginId, resource) => this.opts.isMethodRevoked?.(pluginId, resource) === true,
      topicRevoked: this.topicRevoked,
      replyError: (peer, correlationId, code, message) => this.verdicts.replyError(peer, correlationId, code, message),
      refuse: (f, action, resource, code, reason) => this.verdicts.refuse(f, action, resource, code, reason),
      violation: (peer, code, reason, kind) => this.verdicts.violation(peer, code, reason, kind),
      hello: (peer, slot, msg) => this.admission.hello(peer, slot as PluginSlot, msg),
      segments: this.opts.segments,
      callerOf: (peer, correlationId) => this.calls.openCall(peer, correlationId)?.caller,
      methodOf: (peer, correlationId) => this.calls.openCall(peer, correlationId)?.method,
      deny: (who, action, resource, code, reason) => this.verdicts.deny(who, action, resource, code, reason),
    };
  }

  private readyPeer(id: string): Peer | undefined {
    const slot = this.slots.current.get(id);
    return slot?.ready ? slot.peer : undefined;
  }

  private *everyone(): Iterable<Peer> {
    for (const s of this.slots.current.values()) if (s.peer && s.ready) yield s.peer;
    yield* this.connections.hosts;
    yield this.local;
  }

  /**
   * Ids of 12 characters: V8's JSON.parse interns string values of up to about 10
   * characters in its string table, so every short unique id a peer parses (this one comes
   * back as a correlationId) costs a lookup and an insert into a table that only a full GC
   * empties; that was 6-7% of each process's CPU at 64 calls in flight (docs/performance.md#the-hub).
   */
  private nextId(): string {
    return `h${(++this.seq).toString(36).padStart(11, '0')}`;
  }
}
