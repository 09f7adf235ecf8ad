import type { CallObserver } from './calls.js';

/** One series of messages (a type from a sender): the hub adds one a message. */
export interface MessageCounter {
  add(): void;
}

/** One series of calls (caller -> target.method): the hub tells it each answered or refused call. */
export interface CallSeries {
  /** `seconds` from the request reaching the hub to its answer leaving it; `outcome` `ok` or the error code. */
  observe(seconds: number, outcome: string): void;
}

/**
 * Where the hub's metrics go (the monitor's CallStats, src/monitor/call-stats.ts). The hub
 * asks for a series once and keeps it on the connection (peer-tally.ts): a message or a call
 * then costs one call on an object the hub holds, not a key string built and looked up in a
 * Map each time (4-5% of the hub's CPU at 64 calls in flight; docs/performance.md#the-hub).
 * The series are the metrics' own, so what a scrape reads is what was counted until then.
 */
export interface HubMetrics {
  messages(type: string, from: string): MessageCounter;
  calls(caller: string, target: string, method: string): CallSeries;
}

/** The hub's metrics from the two callbacks of HubOptions (observeCall, observeMessage), each told of every message or call as before. */
export function metricsFromCallbacks(observeCall: CallObserver | undefined, observeMessage: ((type: string, from: string) => void) | undefined): HubMetrics | undefined {
  if (!observeCall && !observeMessage) return undefined;
  return {
    messages: (type, from) => ({ add: () => observeMessage?.(type, from) }),
    calls: (caller, target, method) => ({ observe: (seconds, outcome) => observeCall?.(caller, target, method, seconds, outcome) }),
  };
}
