import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Calls } from './calls.js';
import type { HostMethods } from './host-methods.js';
import type { HubMetrics } from './hub-metrics.js';
import type { HubOptions } from './hub-types.js';
import type { Inbound } from './intake.js';
import { WsPeer } from './peer.js';
import { HOST } from './protocol.js';
import type { PubSub } from './pubsub.js';
import type { RemoteHostMethods } from './remote-host-methods.js';
import type { Slots } from './slots.js';
import type { Verdicts } from './verdicts.js';

export interface RouterDeps {
  readonly log: Logger;
  readonly slots: Slots;
  readonly calls: Calls;
  readonly pubsub: PubSub;
  readonly hostMethods: HostMethods;
  readonly remoteMethods: RemoteHostMethods;
  readonly verdicts: Verdicts;
  readonly audit: AuditSink;
  readonly maxBytes: number;
  readonly nextId: () => string;
  readonly segments: HubOptions['segments'];
  readonly metrics: HubMetrics | undefined;
}

/**
 * The last step of a message that passed every intake check: where it goes. A request to a
 * plugin or a host application opens a call, a response settles one, events and broadcasts
 * go to their subscribers, and the hub answers the rest itself.
 */
export class Router {
  constructor(private readonly deps: RouterDeps) {}

  route(f: Inbound): void {
    const { peer, msg } = f;
    const { verdicts, pubsub } = this.deps;
    if (this.deps.metrics) peer.tally.countMessage(this.deps.metrics, msg.type, peer.id);
    switch (msg.type) {
      case 'request':
        return msg.to[0] === HOST ? this.hostRequest(f) : this.pluginRequest(f);
      case 'response':
        if (!this.deps.calls.answer(peer, msg, f.rawData)) this.deps.log.debug({ from: peer.id, correlationId: msg.correlationId }, 'response to no open call of this peer dropped');
        return;
      case 'event':
      case 'broadcast':
        pubsub.publish(peer, msg);
        if (msg.ack) verdicts.ok(peer, msg.id, { topic: msg.topic ?? null });
        return;
      case 'subscribe':
        if (!pubsub.subscribe(peer, msg.topic)) {
          return verdicts.refuse(f, 'subscribe', msg.topic, 'LM_HUB_LIMIT', `${peer.id} (${peer.origin}) already has ${peer.limits.maxSubscriptions} subscriptions, the most the hub keeps for one connection`);
        }
        return verdicts.ok(peer, msg.id, { topic: msg.topic });
      case 'unsubscribe':
        pubsub.unsubscribe(peer, msg.topic);
        return verdicts.ok(peer, msg.id, { topic: msg.topic });
      case 'segment':
        return this.segmentRequest(f);
      case 'register':
        return this.register(f);
      case 'hello':
        return; // answered by the hello gate
    }
  }

  private pluginRequest(f: Inbound): void {
    const { peer, msg } = f;
    if (msg.type !== 'request') return;
    const to = msg.to[0] ?? '';
    const slot = this.deps.slots.current.get(to);
    if (!slot?.target || !slot.ready) return this.deps.verdicts.replyError(peer, msg.id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${to} is not connected`);
    // The connection's tally of this target.method: its metrics series and audit window, kept (peer-tally.ts).
    const tally = peer.tally.callTo(to, msg.method);
    const refused = this.deps.calls.open(peer, msg, slot.target, f.rawData, tally);
    // Audited once, as what happened: sent on (allowed), or refused by a limit.
    if (refused) this.deps.verdicts.refuse(f, 'call', `${to}.${msg.method}`, refused.code, refused.message);
    else this.deps.verdicts.allowedCall(peer, tally);
  }

  private hostRequest(f: Inbound): void {
    const { peer, msg } = f;
    if (msg.type !== 'request') return;
    const { verdicts } = this.deps;
    const resource = msg.method;
    if (this.deps.hostMethods.serves(msg.method)) {
      verdicts.allowed(peer, resource);
      return void this.deps.hostMethods.invoke(peer, msg, this.deps.maxBytes, this.deps.nextId);
    }
    const served = this.deps.remoteMethods.targetOf(msg.method);
    if (!served) return verdicts.refuse(f, 'call', resource, 'LM_PLUGIN_UNAVAILABLE', `no host application serves the host method '${msg.method}' now`);
    const refused = this.deps.calls.open(peer, msg, served, f.rawData);
    if (refused) verdicts.refuse(f, 'call', resource, refused.code, refused.message);
    else verdicts.allowed(peer, resource);
  }

  /** A host client serves host methods from now on (until it disconnects). */
  private register(f: Inbound): void {
    const { peer, msg } = f;
    if (msg.type !== 'register') return;
    if (!(peer instanceof WsPeer) || peer.kind !== 'host') return this.deps.verdicts.replyError(peer, msg.id, 'LM_PROTOCOL', 'only host clients on the TCP endpoint register host methods');
    const resource = msg.methods.join(',').slice(0, 200);
    try {
      this.deps.remoteMethods.register(peer, msg.methods, (name) => this.deps.hostMethods.serves(name));
    } catch (err) {
      const e = err as LogoMeshError;
      return this.deps.verdicts.refuse(f, 'register', resource, e.code, e.message);
    }
    this.deps.audit({ who: HOST, action: 'register', resource, result: 'allowed', reason: `host client ${peer.origin}` });
    this.deps.verdicts.ok(peer, msg.id, { methods: msg.methods });
  }

  /** A plugin's `segment` message, answered with the pool's result or its coded error (the pool audits). */
  private segmentRequest(f: Inbound): void {
    const { peer, msg } = f;
    const segments = this.deps.segments;
    if (msg.type !== 'segment' || !segments) return;
    segments.request(peer.id, msg).then(
      (data) => this.deps.verdicts.ok(peer, msg.id, data),
      (err: unknown) => {
        const e = err instanceof LogoMeshError ? err : undefined;
        this.deps.verdicts.replyError(peer, msg.id, e?.code ?? 'LM_INTERNAL', e?.message ?? String((err as Error)?.message ?? err).slice(0, 300));
      },
    );
  }
}
