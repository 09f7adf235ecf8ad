import type { ErrorCode } from '../errors.js';
import { CallTable } from './call-table.js';
import { Deadlines, type Timed } from './deadlines.js';
import { encodeRequest, encodeResponse, requestHead, responseHead } from './forward.js';
import type { CallSeries, HubMetrics } from './hub-metrics.js';
import type { Peer, WsPeer } from './peer.js';
import type { CallTally } from './peer-tally.js';
import { DEFAULT_CALL_TIMEOUT_MS, type Request, type Response, type SegmentRef, type WireError } from './protocol.js';

/** Room for the envelope the hub wraps around a peer's data (ids, from, timestamp). */
export const ENVELOPE_BYTES = 4096;
/**
 * A target is blamed for a call it left unanswered only when the caller gave it at least this
 * long: a deadline shorter than this says more about the caller than the target.
 */
const BLAME_AFTER_MS = 250;

/** What the router needs to know of a plugin that is called. */
export interface CallTarget {
  readonly id: string;
  readonly peer: WsPeer;
  /** Calls waiting on it, and the bytes of their requests. */
  waiting: number;
  waitingBytes: number;
}

/** `raw`: the data's text as the target wrote it, forwarded as it is (forward.ts). */
type Outcome = { success: true; data: unknown; segments?: SegmentRef[]; raw?: string } | { success: false; error: WireError };

/** A call in flight; a node of the deadline lists too (deadlines.ts). */
class Pending implements Timed {
  deadline = 0;
  prevTimed: Timed | undefined = undefined;
  nextTimed: Timed | undefined = undefined;
  timedList: Timed['timedList'] = undefined;

  constructor(
    readonly hubId: string,
    readonly caller: Peer,
    readonly callerId: string,
    readonly target: CallTarget,
    readonly method: string,
    readonly timeout: number,
    readonly bytes: number,
    /** performance.now() when the call reached the hub. */
    readonly at: number,
    /** Its metrics series, when calls are observed. */
    readonly series: CallSeries | undefined,
    /** The caller's tally of calls to this target's method (peer-tally.ts), when it keeps one. */
    readonly tally: CallTally | undefined,
  ) {}
}

/**
 * Told of every call the hub answered: who called (a plugin id or `host`), which plugin
 * and method, the seconds from the request reaching the hub to its answer leaving it, and
 * the outcome (`ok` or the error code). Called on the hub's path: it must be cheap.
 */
export type CallObserver = (caller: string, target: string, method: string, seconds: number, outcome: string) => void;

export interface CallsOptions {
  readonly maxMessageBytes: number;
  /** Calls that may wait on one plugin, and their request bytes: what a caller can make a plugin hold. */
  readonly maxWaiting: number;
  readonly maxWaitingBytes: number;
  readonly nextId: () => string;
  /** A peer broke its side of a call (left it unanswered): on its record. */
  readonly blame: (target: string, code: ErrorCode, reason: string) => void;
  /** Metrics of each answered call (default: none). */
  readonly metrics?: HubMetrics | undefined;
}

/**
 * Calls in flight: a request goes to its target under a hub id, the answer goes back to the
 * caller under the caller's id. Only the plugin that was asked may answer; a caller that
 * leaves forgets its calls, a target that leaves fails them.
 */
export class Calls {
  /** By hub id; not a Map (call-table.ts says why). */
  private readonly pending = new CallTable<Pending>();
  private readonly deadlines = new Deadlines<Pending>((p) => this.expire(p));

  constructor(private readonly opts: CallsOptions) {}

  /**
   * Send a call on; returns the coded refusal when it cannot be. `rawData`: its params as the
   * caller wrote them (forward.ts). `tally`: the caller's tally of this target.method, which
   * keeps its metrics series (peer-tally.ts).
   */
  open(caller: Peer, msg: Request, target: CallTarget, rawData?: string, tally?: CallTally): { code: ErrorCode; message: string } | undefined {
    const at = performance.now();
    if (caller.inFlight >= caller.limits.maxInFlight) {
      return { code: 'LM_RATE_LIMITED', message: `${caller.id} already has ${caller.limits.maxInFlight} calls waiting for answers` };
    }
    const timeout = msg.timeout ?? DEFAULT_CALL_TIMEOUT_MS;
    const hubId = this.opts.nextId();
    const out: Request = { type: 'request', id: hubId, from: caller.id, to: tally?.to ?? [target.id], method: msg.method, data: msg.data, timeout, timestamp: Date.now() };
    if (msg.segments) out.segments = msg.segments;
    const head = tally === undefined ? undefined : (tally.requestHead ??= requestHead(caller.id, target.id, msg.method));
    const enc = encodeRequest(out, rawData, this.opts.maxMessageBytes + ENVELOPE_BYTES, head);
    if (!enc.ok) return { code: enc.code, message: enc.message };
    if (target.waiting >= this.opts.maxWaiting || target.waitingBytes + enc.bytes > this.opts.maxWaitingBytes) {
      return { code: 'LM_RATE_LIMITED', message: `plugin ${target.id} already has ${target.waiting} calls (${target.waitingBytes} bytes) waiting for its answers; the most is ${this.opts.maxWaiting} calls or ${this.opts.maxWaitingBytes} bytes` };
    }
    const metrics = this.opts.metrics;
    const series = metrics === undefined ? undefined : tally === undefined ? metrics.calls(caller.id, target.id, msg.method) : (tally.series ??= metrics.calls(caller.id, target.id, msg.method));
    const p = new Pending(hubId, caller, msg.id, target, msg.method, timeout, enc.bytes, at, series, tally);
    this.pending.set(hubId, p);
    this.deadlines.add(p, timeout, at);
    caller.inFlight++;
    target.waiting++;
    target.waitingBytes += enc.bytes;
    if (target.peer.deliver(out, enc) !== 'sent') this.finish(hubId, fail('LM_PLUGIN_EXITED', `plugin ${target.id} was disconnected before it took the call to ${msg.method}`));
    return undefined;
  }

  /** An answer from `peer`; anything not answering one of its own open calls is dropped. `rawData`: its result as written. */
  answer(peer: Peer, msg: Response, rawData?: string): boolean {
    const p = this.pending.get(msg.correlationId);
    if (!p || p.target.id !== peer.id || p.target.peer !== peer) return false;
    peer.lastAnswerAt = performance.now();
    this.finish(msg.correlationId, msg.success ? { success: true, data: msg.data, segments: msg.segments, raw: rawData } : { success: false, error: msg.error! });
    return true;
  }

  /** The call `peer` would answer with `hubId`, if it is one of its open calls: who made it, and which method it was. */
  openCall(peer: Peer, hubId: string): { caller: string; method: string } | undefined {
    const p = this.pending.get(hubId);
    return p && p.target.peer === peer ? { caller: p.caller.id, method: p.method } : undefined;
  }

  /** `peer` answered call `hubId` with a frame the hub refused (too large, too deep, malformed): the caller learns it now, not at its timeout. */
  answerRefused(peer: Peer, hubId: string, error: WireError): boolean {
    const p = this.pending.get(hubId);
    if (!p || p.target.peer !== peer) return false;
    this.finish(hubId, fail(error.code as ErrorCode, `${p.target.id} answered ${p.method} with a frame the hub refused: ${error.message}`));
    return true;
  }

  /**
   * A plugin went away: every call to it fails now, with LM_PLUGIN_EXITED, or with the cause
   * the controller found (`cause`: LM_RESOURCE_MEMORY for a plugin killed for memory).
   */
  targetGone(target: CallTarget, why: string, cause?: { code: ErrorCode; message: string }): void {
    for (const [hubId, p] of this.pending.entries()) {
      if (p.target !== target) continue;
      this.finish(hubId, cause ? fail(cause.code, `${cause.message} during the call to ${p.method}`) : fail('LM_PLUGIN_EXITED', `plugin ${target.id} ${why} during the call to ${p.method}`));
    }
  }

  /** A caller went away: its calls are forgotten (their answers will be dropped). */
  callerGone(caller: Peer): void {
    for (const [hubId, p] of this.pending.entries()) if (p.caller === caller) this.settle(hubId, p);
  }

  /** No timer left behind (the hub closed: every call has been failed). */
  close(): void {
    this.deadlines.close();
  }

  /** A call's deadline passed (deadlines.ts: at it, or up to SLACK_MS after it). */
  private expire(p: Pending): void {
    if (this.pending.get(p.hubId) !== p) return;
    if (p.timeout >= BLAME_AFTER_MS) this.opts.blame(p.target.id, 'LM_TIMEOUT', `did not answer ${p.method} from ${p.caller.id} within ${p.timeout} ms`);
    this.finish(p.hubId, fail('LM_TIMEOUT', `no response from ${p.target.id}.${p.method} within ${p.timeout} ms`));
  }

  private finish(hubId: string, outcome: Outcome): void {
    const p = this.pending.get(hubId);
    if (!p) return;
    this.settle(hubId, p);
    p.series?.observe((performance.now() - p.at) / 1000, outcome.success ? 'ok' : outcome.error.code);
    const reply = replyTo(p, this.opts.nextId(), outcome);
    if (p.caller.inProcess) return void p.caller.deliver(reply);
    const head = p.tally === undefined ? undefined : (p.tally.responseHead ??= responseHead(p.target.id));
    const enc = encodeResponse(reply, outcome.success ? outcome.raw : undefined, this.opts.maxMessageBytes + ENVELOPE_BYTES, head);
    if (enc.ok) p.caller.deliver(reply, enc);
    else p.caller.deliver({ ...reply, success: false, error: { code: enc.code, message: `the answer of ${p.target.id}.${p.method} cannot be delivered: ${enc.message}` } } as Response);
  }

  private settle(hubId: string, p: Pending): void {
    this.pending.delete(hubId);
    this.deadlines.remove(p);
    p.caller.inFlight--;
    p.target.waiting--;
    p.target.waitingBytes -= p.bytes;
  }
}

/**
 * The answer the caller gets, under its own id. Written out as one literal, never spread:
 * V8 copies an object that holds a double (the timestamp) field by field in its runtime, and
 * `{ ...head, ... }` cost the hub 2-7 us a call (6% of its samples at 64 in flight;
 * docs/performance.md#the-hub).
 */
function replyTo(p: Pending, id: string, outcome: Outcome): Response {
  const timestamp = Date.now();
  if (!outcome.success) return { type: 'response', id, from: p.target.id, correlationId: p.callerId, timestamp, success: false, error: outcome.error };
  const reply: Response = { type: 'response', id, from: p.target.id, correlationId: p.callerId, timestamp, success: true, data: outcome.data };
  if (outcome.segments) reply.segments = outcome.segments;
  return reply;
}

export function fail(code: ErrorCode, message: string): { success: false; error: WireError } {
  return { success: false, error: { code, message } };
}
