import type { AuditRepeat } from '../audit/audit-throttle.js';
import type { CallSeries, HubMetrics, MessageCounter } from './hub-metrics.js';

/**
 * What the hub keeps of the calls a connection makes to one target's method: its metrics
 * series, its open audit window, and the unchanging parts of the forwarded frames (forward.ts).
 */
export class CallTally {
  /** `target.method`: the name the ACL, the operator's revocations and the audit know the call by. */
  readonly resource: string;
  /** The forwarded request's `to`, made once (nothing changes a request's `to` after it is made). */
  readonly to: [string];
  series: CallSeries | undefined = undefined;
  audit: AuditRepeat | undefined = undefined;
  requestHead: string | undefined = undefined;
  responseHead: string | undefined = undefined;

  constructor(
    readonly target: string,
    readonly method: string,
  ) {
    this.resource = `${target}.${method}`;
    this.to = [target];
  }
}

/**
 * The tallies one connection keeps at most. A caller that spreads its calls over many targets
 * (the host calling 200 plugins in turn) finds each one's tally again; past this many (only
 * a caller of that many distinct methods) they are all dropped and built again as needed, so
 * a connection cannot grow the hub's memory without bound. Each is a few small objects.
 */
export const MAX_TALLIES = 512;

/**
 * The counters the hub holds for one connection, so that each message and each allowed call
 * costs no key string (hub-metrics.ts). A connection mostly sends one kind of message and
 * calls one method many times in a row: the last type's counter and the last call's tally
 * are at hand; the tallies of the other targets and methods it called are kept too, found by
 * the target's and the method's own strings in two Maps (no key is built). With only the
 * last one kept, the host's calls spread over 200 plugins built a tally, a metrics key, an
 * audit key and a frame head every call, and those young objects were what the controller's
 * scavenges copied (docs/performance.md#the-hub). The counters are the monitor's and the
 * audit throttle's own objects, so their figures are unchanged.
 */
export class PeerTally {
  private type = '';
  private counter: MessageCounter | undefined = undefined;
  private call: CallTally | undefined = undefined;
  /** target -> method -> its tally. */
  private readonly calls = new Map<string, Map<string, CallTally>>();
  private tallies = 0;

  countMessage(metrics: HubMetrics, type: string, from: string): void {
    if (this.counter === undefined || type !== this.type) {
      this.type = type;
      this.counter = metrics.messages(type, from);
    }
    this.counter.add();
  }

  /** The tally of a call to `target`.`method`: the last one's when it is the same. */
  callTo(target: string, method: string): CallTally {
    const c = this.call;
    if (c !== undefined && c.method === method && c.target === target) return c;
    let methods = this.calls.get(target);
    let t = methods?.get(method);
    if (t === undefined) {
      if (this.tallies >= MAX_TALLIES) {
        this.calls.clear();
        this.tallies = 0;
        methods = undefined;
      }
      if (methods === undefined) this.calls.set(target, (methods = new Map()));
      methods.set(method, (t = new CallTally(target, method)));
      this.tallies++;
    }
    return (this.call = t);
  }

  /** The tallies kept (for the tests: bounded by MAX_TALLIES). */
  get size(): number {
    return this.tallies;
  }
}
