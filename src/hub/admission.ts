import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import { decideSubscribe } from './acl.js';
import { chooseEncoding } from './frames.js';
import { LineBatch, MAX_BATCH_FRAMES } from './line-batch.js';
import type { PluginSlot } from './hub-types.js';
import { WsPeer, type Peer } from './peer.js';
import { PROTOCOL_VERSION, type Hello } from './protocol.js';
import type { PubSub } from './pubsub.js';
import type { Slots } from './slots.js';
import type { Verdicts } from './verdicts.js';

const NOT_REVOKED = (): boolean => false;

export interface AdmissionDeps {
  readonly log: Logger;
  readonly slots: Slots;
  readonly pubsub: PubSub;
  readonly verdicts: Verdicts;
  readonly audit: AuditSink;
  readonly maxBytes: number;
  /** 'ready' (pluginId, methods) once a plugin is admitted, 'standby-ready' (pluginId) once a standby's hello is held. */
  emit(event: 'ready' | 'standby-ready', pluginId: string, methods?: readonly string[]): void;
}

/**
 * A plugin's hello, checked against its manifest's policy and answered: the plugin is ready
 * on that connection from then on. A standby's hello is held, unanswered, until it is
 * switched in (Slots.switchToStandby calls `admit`).
 */
export class Admission {
  constructor(private readonly deps: AdmissionDeps) {}

  hello(peer: Peer, slot: PluginSlot, msg: Hello): void {
    const { verdicts, audit } = this.deps;
    if (msg.protocol !== PROTOCOL_VERSION) {
      return verdicts.replyError(peer, msg.id, 'LM_PROTOCOL', `protocol ${msg.protocol} is not spoken here; supported: ${PROTOCOL_VERSION}`);
    }
    const undeclared = msg.methods.filter((m) => !slot.policy.exposes.has(m));
    if (undeclared.length) {
      audit({ who: slot.policy.id, action: 'hello', resource: undeclared.join(',').slice(0, 200), result: 'denied', code: 'LM_PERMISSION_DENIED', reason: 'methods not declared in exposesMethods' });
      return verdicts.replyError(peer, msg.id, 'LM_PERMISSION_DENIED', `methods not listed under coordination.exposesMethods: ${undeclared.join(', ')}`);
    }
    const topics = msg.subscriptions ?? [];
    if (topics.length > peer.limits.maxSubscriptions) {
      return verdicts.replyError(peer, msg.id, 'LM_HUB_LIMIT', `hello asks for ${topics.length} subscriptions; the hub keeps at most ${peer.limits.maxSubscriptions} for one connection`);
    }
    // Only what the manifest does not declare refuses hello. A topic the operator revoked is
    // subscribed all the same: every delivery is checked against the revocations, so it
    // hears nothing while revoked and hears again once granted, and the plugin is not stopped
    // for what the operator chose.
    const refused = topics.map((t) => decideSubscribe(slot.policy, t, NOT_REVOKED)).filter((d) => !d.allowed);
    if (refused.length) {
      const reasons = refused.map((d) => (d.allowed ? '' : d.reason)).join('; ');
      audit({ who: slot.policy.id, action: 'hello', resource: topics.join(',').slice(0, 200), result: 'denied', code: 'LM_PERMISSION_DENIED', reason: reasons.slice(0, 256) });
      return verdicts.replyError(peer, msg.id, 'LM_PERMISSION_DENIED', reasons);
    }
    // A standby's hello waits, unanswered, until it is switched in (its SDK waits without a timeout).
    // A replacement's (a successor slot) is answered: that is the handover (promote).
    if (this.deps.slots.current.get(slot.policy.id)?.standby === slot) {
      slot.heldHello = msg;
      this.deps.log.debug({ plugin: slot.policy.id, sdk: msg.sdk }, 'standby waiting');
      this.deps.emit('standby-ready', slot.policy.id);
      return;
    }
    this.admit(peer, slot, msg);
  }

  /** A checked hello answered: the plugin is ready on this connection. */
  admit(peer: Peer, slot: PluginSlot, msg: Hello): void {
    for (const t of msg.subscriptions ?? []) this.deps.pubsub.subscribe(peer, t);
    slot.methods = [...msg.methods];
    slot.ready = true;
    if (this.deps.slots.isSuccessor(slot)) this.deps.slots.promote(slot);
    const encoding = chooseEncoding(msg.encodings);
    // The answer itself is JSON text: the plugin switches once it has read it.
    // Batched frames are JSON text: a plugin that speaks msgpack keeps one frame per message.
    const batch = msg.batch === true && encoding === 'json' && peer instanceof WsPeer;
    this.deps.verdicts.ok(peer, msg.id, { plugin: slot.policy.id, protocol: PROTOCOL_VERSION, maxMessageBytes: this.deps.maxBytes, encoding, ...(batch ? { batch: MAX_BATCH_FRAMES } : {}) });
    if (peer instanceof WsPeer) {
      peer.binary = encoding === 'msgpack';
      // From the frame after this answer on, both ways (the answer itself goes alone).
      peer.lines = batch ? new LineBatch(peer.ws, peer.limits.maxMessageBytes) : undefined;
    }
    this.deps.log.debug({ plugin: slot.policy.id, methods: msg.methods, sdk: msg.sdk }, 'plugin ready');
    this.deps.emit('ready', slot.policy.id, slot.methods);
  }
}
