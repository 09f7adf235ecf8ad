import type { Registry } from 'prom-client';

/** Hub call latency buckets, seconds: from the ~100 us round-trip floor to the 30 s default timeout. */
export const CALL_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * Label sets kept at most. Callers name their targets and methods, and a refused call may
 * name anything: past this many, new ones are counted under `(other)`, so a client cannot
 * grow the controller's memory by calling made-up methods.
 */
export const MAX_SERIES = 4096;
const OTHER = '(other)';

interface CallSeries {
  readonly labels: { readonly caller: string; readonly target: string; readonly method: string };
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
  readonly outcomes: Map<string, number>;
}

/** One caller -> target.method series at one moment: counts since the controller started. */
export interface CallSnapshot {
  readonly caller: string;
  readonly target: string;
  readonly method: string;
  readonly count: number;
  /** Per bucket of CALL_BUCKETS, not cumulative; the last slot is above the last bound. */
  readonly buckets: readonly number[];
  /** Calls whose outcome was not `ok`. */
  readonly errors: number;
}

interface MetricValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/**
 * Hub calls and messages, counted on the hub's path. prom-client's own Counter and
 * Histogram hash and validate the labels at every observation, which cost the hub about a
 * tenth of its throughput; here an observation is one Map lookup and a few additions, and
 * the series are built at scrape time (registered in the registry as metrics of their own).
 */
export class CallStats {
  private readonly calls = new Map<string, CallSeries>();
  private readonly messages = new Map<string, { readonly type: string; readonly from: string; n: number }>();

  constructor(registry: Registry) {
    const metric = (name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]) =>
      registry.registerMetric({ name, help, type, aggregator: 'sum', get: () => ({ name, help, type, aggregator: 'sum', values: values() }) } as never);
    metric('logomesh_hub_calls_total', 'Calls through the hub, by caller, target, method and outcome (ok or the error code).', 'counter', () => this.callCounts());
    metric('logomesh_hub_call_duration_seconds', 'Time from a call reaching the hub to its answer leaving it, by caller, target and method.', 'histogram', () => this.histogram('logomesh_hub_call_duration_seconds'));
    metric('logomesh_hub_messages_total', 'Messages the hub accepted, by type (request, response, event, broadcast, subscribe, ...) and sender.', 'counter', () =>
      [...this.messages.values()].map((m) => ({ labels: { type: m.type, from: m.from }, value: m.n })),
    );
  }

  observeCall(caller: string, target: string, method: string, seconds: number, outcome: string): void {
    const key = `${caller}\0${target}\0${method}`;
    let s = this.calls.get(key);
    if (!s) {
      const labels = this.calls.size < MAX_SERIES ? { caller, target, method } : { caller: OTHER, target: OTHER, method: OTHER };
      const folded = `${labels.caller}\0${labels.target}\0${labels.method}`;
      s = this.calls.get(folded) ?? { labels, buckets: new Float64Array(CALL_BUCKETS.length + 1), sum: 0, count: 0, outcomes: new Map() };
      this.calls.set(folded, s);
    }
    let i = 0;
    while (i < CALL_BUCKETS.length && seconds > CALL_BUCKETS[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
    const o = s.outcomes.size < 64 || s.outcomes.has(outcome) ? outcome : OTHER;
    s.outcomes.set(o, (s.outcomes.get(o) ?? 0) + 1);
  }

  /** Every series now (copies): the console turns two of these into call rates and p50/p99 over a window. */
  snapshot(): CallSnapshot[] {
    return [...this.calls.values()].map((s) => ({ ...s.labels, count: s.count, buckets: Array.from(s.buckets), errors: s.count - (s.outcomes.get('ok') ?? 0) }));
  }

  countMessage(type: string, from: string): void {
    const key = `${type}\0${from}`;
    const m = this.messages.get(key);
    if (m) m.n++;
    else if (this.messages.size < MAX_SERIES) this.messages.set(key, { type, from, n: 1 });
  }

  private callCounts(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.calls.values()) for (const [outcome, n] of s.outcomes) out.push({ labels: { ...s.labels, outcome }, value: n });
    return out;
  }

  /** Cumulative buckets, then sum and count, as prom-client's Histogram writes them. */
  private histogram(name: string): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.calls.values()) {
      let acc = 0;
      CALL_BUCKETS.forEach((le, i) => {
        acc += s.buckets[i]!;
        out.push({ labels: { le, ...s.labels }, value: acc, metricName: `${name}_bucket` });
      });
      out.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${name}_bucket` });
      out.push({ labels: s.labels, value: s.sum, metricName: `${name}_sum` });
      out.push({ labels: s.labels, value: s.count, metricName: `${name}_count` });
    }
    return out;
  }
}
