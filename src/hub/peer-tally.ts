import type { AuditRepeat } from '../audit/audit-throttle.js';
import type { CallSeries, HubMetrics, MessageCounter } from './hub-metrics.js';

/**
 * What the hub keeps of the calls a connection makes to one target's method: its metrics
 * series, its open audit window, and the unchanging parts of the forwarded frames (forward.ts).
 */
export class CallTally {
  series: CallSeries | undefined = undefined;
  audit: AuditRepeat | undefined = undefined;
  requestHead: string | undefined = undefined;
  responseHead: string | undefined = undefined;

  constructor(
    readonly target: string,
    readonly method: string,
  ) {}
}

/**
 * The counters the hub holds for one connection, so that each message and each allowed call
 * costs no key string and no Map lookup (hub-metrics.ts). A connection mostly sends one kind
 * of message and calls one method many times in a row: the last type's counter and the last
 * call's tally are kept, and looked up again only when they change. The counters are the
 * monitor's and the audit throttle's own objects, so their figures are unchanged.
 */
export class PeerTally {
  private type = '';
  private counter: MessageCounter | undefined = undefined;
  private call: CallTally | undefined = undefined;

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
    return (this.call = new CallTally(target, method));
  }
}
