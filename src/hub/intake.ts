import type { ErrorCode } from '../errors.js';
import { decideCall, decidePublish, decideSubscribe, mayReceive, type PluginPolicy, type TopicRevoked } from './acl.js';
import { checkAgainst } from './method-schemas.js';
import type { Peer } from './peer.js';
import { HOST, type ClientMessage, type Hello, type SegmentRef } from './protocol.js';
import type { SegmentBroker } from './segments.js';

/**
 * The steps every message takes through the hub, one way, each small: rate limit, hello
 * gate, sender check, authorization, then the route. A step passes the message on with
 * `next`, or answers it and stops. Adding a check (a schema, a segment handle) is adding a
 * step here.
 */

/** A message on its way through the hub. `slot` is set when a plugin sent it. */
export interface Inbound {
  readonly peer: Peer;
  readonly slot: IntakeSlot | undefined;
  readonly msg: ClientMessage;
  /** A `from` the sender put in its frame (ignored: the hub knows who it is). */
  readonly claimedFrom?: string | undefined;
  /** The text of its `data` as it came, forwarded as it is (forward.ts); cleared where a step checked the value. */
  readonly rawData?: string | undefined;
}

export interface IntakeSlot {
  readonly policy: PluginPolicy;
  ready: boolean;
}

export type Handler = (f: Inbound) => void;
export type Step = (next: Handler) => Handler;

/** What the steps need of the hub. */
export interface IntakeContext {
  readonly hostMethods: ReadonlySet<string>;
  target(id: string): IntakeSlot | undefined;
  isRevoked(pluginId: string, resource: string): boolean;
  readonly topicRevoked: TopicRevoked;
  /** Answer a message with a coded error (no audit). */
  replyError(peer: Peer, correlationId: string, code: ErrorCode, message: string): void;
  /** Refuse: audit the decision (aggregated), log it at the same rate, answer with the error. */
  refuse(f: Inbound, action: string, resource: string, code: ErrorCode, reason: string): void;
  /** The sender broke the protocol or a limit: on its record (aggregated). */
  violation(peer: Peer, code: ErrorCode, reason: string, kind: 'rate' | 'from'): void;
  hello(peer: Peer, slot: IntakeSlot, msg: Hello): void;
  /** The shared-memory pool's side of the hub (absent: no pool, and no message may carry segments). */
  readonly segments: SegmentBroker | undefined;
  /** Who made the call `peer` answers with `correlationId`, and which method it was (undefined: none of its open calls). */
  callerOf(peer: Peer, correlationId: string): string | undefined;
  methodOf(peer: Peer, correlationId: string): string | undefined;
  /** On the record, without an answer (a refused response: its sender waits for nothing). */
  deny(who: string, action: string, resource: string, code: ErrorCode, reason: string): void;
}

/** How long a sender over its rate limit is not read from. */
export const HOLD_MS = 100;

export function compose(steps: readonly Step[], last: Handler): Handler {
  return steps.reduceRight<Handler>((next, step) => step(next), last);
}

/**
 * Requests, events, broadcasts and subscriptions cost a token; answers never do (dropping one
 * would strand its caller). A refused request or subscription is answered (its sender waits
 * for that); refused events and broadcasts, which nobody waits for, are answered once a
 * second: answering each would only feed the flood. Every refusal is audited.
 */
export const rateLimit = (cx: IntakeContext): Step => (next) => (f) => {
  if (f.msg.type === 'response' || f.peer.bucket.take()) return next(f);
  const rate = f.peer.bucket.rate;
  cx.violation(f.peer, 'LM_RATE_LIMITED', `more than ${rate} messages/s`, 'rate');
  // A host client is not read from until its bucket has refilled a little: what it keeps
  // sending waits in its socket, and TCP slows it down, instead of costing the hub a refusal
  // each. Not a plugin: its answers to the health checks would wait behind its own flood.
  if (f.peer.kind === 'host') f.peer.hold?.(HOLD_MS);
  // A sender that asked for an answer (ack) waits for it: it gets one.
  if ((f.msg.type === 'event' || f.msg.type === 'broadcast') && !f.msg.ack && !f.peer.bucket.notice()) return;
  cx.replyError(f.peer, f.msg.id, 'LM_RATE_LIMITED', `${who(f.peer)} exceeded its rate limit of ${rate} messages/s`);
};

/** A plugin says hello first, and only a plugin says it. */
export const helloGate = (cx: IntakeContext): Step => (next) => (f) => {
  if (f.msg.type === 'hello') {
    if (f.slot) return cx.hello(f.peer, f.slot, f.msg);
    return cx.replyError(f.peer, f.msg.id, 'LM_PROTOCOL', 'host clients do not send hello');
  }
  if (f.slot && !f.slot.ready) return cx.replyError(f.peer, f.msg.id, 'LM_PROTOCOL', `send hello before ${f.msg.type}`);
  next(f);
};

/**
 * The hub sets `from` itself from the socket; a plugin that claims another is told nothing
 * (its message goes on as its own) but it is on the record.
 */
export const senderCheck = (cx: IntakeContext): Step => (next) => (f) => {
  if (f.slot && f.claimedFrom !== undefined && f.claimedFrom !== f.peer.id) {
    cx.violation(f.peer, 'LM_PERMISSION_DENIED', `a ${f.msg.type} claimed to come from '${f.claimedFrom.slice(0, 64)}'; the hub sent it as ${f.peer.id}`, 'from');
  }
  next(f);
};

/** Calls only where both manifests agree and the operator has not revoked; messaging only where declared. */
export const authorize = (cx: IntakeContext): Step => (next) => (f) => {
  const m = f.msg;
  if (m.type === 'request') {
    const targetId = m.to[0];
    // A plugin's call is named by the caller's tally of it (peer-tally.ts): no string built a call.
    const resource = targetId === HOST ? m.method : f.peer.tally.callTo(targetId, m.method).resource;
    if (f.peer.kind === 'plugin' && cx.isRevoked(f.peer.id, resource)) {
      return cx.refuse(f, 'call', resource, 'LM_PERMISSION_DENIED', `the operator revoked '${resource}' from plugin ${f.peer.id}`);
    }
    const caller = callerPolicy(f);
    const target = targetId === HOST ? HOST : cx.target(targetId)?.policy;
    if (target === undefined) return cx.replyError(f.peer, m.id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${targetId} is not running`);
    const d = decideCall(caller, target, m.method, cx.hostMethods, resource);
    if (!d.allowed) return cx.refuse(f, 'call', resource, d.code, d.reason);
  } else if (m.type === 'event' || m.type === 'broadcast') {
    const d = decidePublish(callerPolicy(f), m.type, m.topic, cx.topicRevoked);
    if (!d.allowed) return cx.refuse(f, m.type, m.topic ?? '*', d.code, d.reason);
    // An event sent to named plugins reaches them only if each may hear its topic: all or none.
    if (m.type === 'event' && m.to) {
      const deaf = m.to.flatMap((id) => {
        const slot = id === HOST ? undefined : cx.target(id);
        return slot && !mayReceive(slot.policy, m.topic, cx.topicRevoked) ? [id] : [];
      });
      if (deaf.length) {
        return cx.refuse(f, m.type, m.topic, 'LM_PERMISSION_DENIED', `${deaf.map((id) => `plugin ${id}`).join(', ')} may not receive '${m.topic}': no pattern under its coordination.subscribes covers it (or the operator revoked it)`);
      }
    }
  } else if (m.type === 'subscribe') {
    const d = decideSubscribe(callerPolicy(f), m.topic, cx.topicRevoked);
    if (!d.allowed) return cx.refuse(f, 'subscribe', m.topic, d.code, d.reason);
  }
  next(f);
};

/**
 * Schemas on the wire: a call whose params break the schema its target declares for the
 * method (coordination.methodSchemas) is refused with LM_SCHEMA before the target sees it;
 * an answer whose result breaks the method's result schema reaches its caller as LM_SCHEMA
 * instead. Both audited.
 */
export const schemaCheck = (cx: IntakeContext): Step => (next) => (f) => {
  const m = f.msg;
  if (m.type === 'request' && m.to[0] !== HOST) {
    const v = cx.target(m.to[0])?.policy.schemas?.get(m.method)?.params;
    if (!v) return next(f);
    const problem = checkAgainst(v, m.data, `${m.to[0]}.${m.method} params`);
    if (problem) return cx.refuse(f, 'call', `${m.to[0]}.${m.method}`, 'LM_SCHEMA', problem);
    // The value the schema passed goes on, serialized again: a text forwarded as it came
    // could be read otherwise by the target's parser (a key given twice, say).
    return next({ ...f, rawData: undefined });
  } else if (m.type === 'response' && m.success && f.slot?.policy.schemas?.size) {
    const method = cx.methodOf(f.peer, m.correlationId);
    const v = method === undefined ? undefined : f.slot.policy.schemas.get(method)?.result;
    if (!v) return next(f);
    const problem = checkAgainst(v, m.data, `${f.peer.id}.${method} result`);
    if (problem) {
      cx.deny(f.peer.id, 'answer', `${f.peer.id}.${method}`, 'LM_SCHEMA', problem);
      return next({ ...f, rawData: undefined, msg: { type: 'response', id: m.id, correlationId: m.correlationId, success: false, error: { code: 'LM_SCHEMA', message: problem } } });
    }
    return next({ ...f, rawData: undefined });
  }
  next(f);
};

/**
 * Segment handles, checked before delivery: only a plugin that sets
 * coordination.sharedMemory sends `segment` messages or carries handles, and a request,
 * event or response reaches its receiver only if the receiver may open every segment it
 * carries, or is given access on the way (`grant`, by the segment's owner). The pool decides
 * and audits grants; refusals are audited here. A refused response reaches its caller as the
 * failure, so the caller is not left waiting. The check spawns setfacl for a grant, so a
 * message with segments may overtake an earlier one of the same sender.
 */
export const segmentHandles = (cx: IntakeContext): Step => (next) => (f) => {
  const m = f.msg;
  if (m.type === 'segment') {
    if (!f.slot) return cx.replyError(f.peer, m.id, 'LM_PROTOCOL', 'only plugins send segment messages; the host application uses the controller API');
    if (!f.slot.policy.sharedMemory) return cx.refuse(f, `segment ${m.op}`, m.segment ?? 'pool', 'LM_PERMISSION_DENIED', `plugin ${f.peer.id} does not set coordination.sharedMemory: true`);
    if (!cx.segments) return cx.replyError(f.peer, m.id, 'LM_SEGMENT', 'this hub has no shared-memory pool');
    return next(f);
  }
  const refs = m.type === 'request' || m.type === 'event' || m.type === 'response' ? m.segments : undefined;
  if (!refs) return next(f);
  const sender = f.slot ? f.peer.id : HOST;
  const ids = refs.map((r) => r.id).join(',');
  const refuse = (code: ErrorCode, reason: string): void => {
    if (m.type !== 'response') return cx.refuse(f, 'segment pass', ids, code, reason);
    cx.deny(f.peer.id, 'segment pass', ids, code, reason);
    next({ ...f, msg: { type: 'response', id: m.id, correlationId: m.correlationId, success: false, error: { code, message: `the answer was refused: ${reason}` } } });
  };
  if (f.slot && !f.slot.policy.sharedMemory) return refuse('LM_PERMISSION_DENIED', `plugin ${f.peer.id} does not set coordination.sharedMemory: true, so it carries no segments`);
  const broker = cx.segments;
  if (!broker) return refuse('LM_SEGMENT', 'this hub has no shared-memory pool');
  const receivers = m.type === 'request' ? [m.to[0]] : m.type === 'event' ? (m.to ?? []) : [cx.callerOf(f.peer, (m as { correlationId: string }).correlationId)];
  const pending = receivers.filter((r): r is string => r !== undefined && r !== HOST).map((r) => broker.pass(sender, r, refs as readonly SegmentRef[]));
  void Promise.all(pending).then(
    (decisions) => {
      const no = decisions.find((d) => !d.allowed);
      if (!no || no.allowed) return next(f);
      refuse(no.code, no.reason);
    },
    (err: unknown) => refuse('LM_INTERNAL', `checking the segments failed: ${String((err as Error)?.message ?? err).slice(0, 200)}`),
  );
};

function callerPolicy(f: Inbound): PluginPolicy | 'host' {
  return f.peer.kind === 'host' || !f.slot ? HOST : f.slot.policy;
}

function who(peer: Peer): string {
  return peer.kind === 'plugin' ? `plugin ${peer.id}` : `host client (${peer.origin})`;
}
