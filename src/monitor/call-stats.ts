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

/**
 * One caller -> target.method series. The hub holds it for the calls it sees again and
 * again (src/hub/peer-tally.ts) and tells it each call directly: `ok`, the common outcome, is
 * a plain count; the others are counted by code.
 */
class CallSeries {
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets = new Float64Array(CALL_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  /** Calls whose outcome was `ok`; `outcomes` holds a 0 under `ok` to keep the order outcomes were first seen in. */
  private ok = 0;
  private readonly outcomes = new Map<string, number>();

  constructor(readonly labels: { readonly caller: string; readonly target: string; readonly method: string }) {}

  observe(seconds: number, outcome: string): void {
    let i = 0;
    while (i < CALL_BUCKETS.length && seconds > CALL_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
    if (outcome === 'ok' && this.ok > 0) {
      this.ok++;
      return;
    }
    const o = this.outcomes.size < 64 || this.outcomes.has(outcome) ? outcome : OTHER;
    if (o === 'ok') {
      this.ok++;
      this.outcomes.set(o, 0);
    } else this.outcomes.set(o, (this.outcomes.get(o) ?? 0) + 1);
  }

  get okCount(): number {
    return this.ok;
  }

  /** Each outcome and its count, in the order first seen. */
  counts(): [string, number][] {
    return [...this.outcomes].map(([o, n]) => [o, o === 'ok' ? this.ok : n]);
  }
}

/** One type of message from one sender; the hub adds to it directly (src/hub/peer-tally.ts). */
class MessageSeries {
  n = 0;

  constructor(
    readonly type: string,
    readonly from: string,
  ) {}

  add(): void {
    this.n++;
  }
}

/** What a series past MAX_SERIES counts: nothing, as before. */
const UNCOUNTED = { add(): void {} };

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
 * tenth of its throughput; here an observation is one Map lookup and a few additions (none
 * when the hub holds the series: `calls` and `messages`), and the series are built at scrape
 * time (registered in the registry as metrics of their own).
 */
export class CallStats {
  private readonly series = new Map<string, CallSeries>();
  private readonly messageSeries = new Map<string, MessageSeries>();

  constructor(registry: Registry) {
    const metric = (name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]) =>
      registry.registerMetric({ name, help, type, aggregator: 'sum', get: () => ({ name, help, type, aggregator: 'sum', values: values() }) } as never);
    metric('logomesh_hub_calls_total', 'Calls through the hub, by caller, target, method and outcome (ok or the error code).', 'counter', () => this.callCounts());
    metric('logomesh_hub_call_duration_seconds', 'Time from a call reaching the hub to its answer leaving it, by caller, target and method.', 'histogram', () => this.histogram('logomesh_hub_call_duration_seconds'));
    metric('logomesh_hub_messages_total', 'Messages the hub accepted, by type (request, response, event, broadcast, subscribe, ...) and sender.', 'counter', () =>
      [...this.messageSeries.values()].map((m) => ({ labels: { type: m.type, from: m.from }, value: m.n })),
    );
  }

  observeCall(caller: string, target: string, method: string, seconds: number, outcome: string): void {
    this.calls(caller, target, method).observe(seconds, outcome);
  }

  /** The series of messages of `type` from `from`, for the hub to keep and add to; past MAX_SERIES a new one counts nothing. */
  messages(type: string, from: string): { add(): void } {
    const key = `${type}\0${from}`;
    let m = this.messageSeries.get(key);
    if (!m) {
      if (this.messageSeries.size >= MAX_SERIES) return UNCOUNTED;
      m = new MessageSeries(type, from);
      this.messageSeries.set(key, m);
    }
    return m;
  }

  /**
   * The series of caller -> target.method, for the hub to keep and observe calls into
   * (src/hub/hub-metrics.ts): past MAX_SERIES, a new one is the `(other)` series.
   */
  calls(caller: string, target: string, method: string): CallSeries {
    const key = `${caller}\0${target}\0${method}`;
    let s = this.series.get(key);
    if (!s) {
      const labels = this.series.size < MAX_SERIES ? { caller, target, method } : { caller: OTHER, target: OTHER, method: OTHER };
      const folded = `${labels.caller}\0${labels.target}\0${labels.method}`;
      s = this.series.get(folded) ?? new CallSeries(labels);
      this.series.set(folded, s);
    }
    return s;
  }

  /** Every series now (copies): the console turns two of these into call rates and p50/p99 over a window. */
  snapshot(): CallSnapshot[] {
    return [...this.series.values()].map((s) => ({ ...s.labels, count: s.count, buckets: Array.from(s.buckets), errors: s.count - s.okCount }));
  }

  countMessage(type: string, from: string): void {
    this.messages(type, from).add();
  }

  private callCounts(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.series.values()) for (const [outcome, n] of s.counts()) out.push({ labels: { ...s.labels, outcome }, value: n });
    return out;
  }

  /** Cumulative buckets, then sum and count, as prom-client's Histogram writes them. */
  private histogram(name: string): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.series.values()) {
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
