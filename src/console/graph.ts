import { CALL_BUCKETS, type CallSnapshot } from '../monitor/call-stats.js';
import type { ConsoleHost } from './host.js';

/** One edge of the graph: a call the caller's manifest allows (consumesMethods) to a target that exposes it, or a call the host application made. */
export interface GraphEdge {
  readonly from: string;
  /** A plugin id, or `host` for a host method. */
  readonly to: string;
  readonly method: string;
  /** The target does not expose it (or is not loaded): the manifest asks for a call that cannot succeed. */
  readonly dangling: boolean;
  readonly revoked: boolean;
  /** Calls a second over the window, and their latency quantiles in ms (upper bucket bounds, interpolated). */
  readonly rate: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly errors: number;
  readonly total: number;
}

export interface Graph {
  readonly nodes: { readonly id: string; readonly exposes: readonly string[] }[];
  readonly edges: GraphEdge[];
  /** The window the rates and quantiles are over, seconds. */
  readonly windowS: number;
}

type Keyed = Map<string, CallSnapshot>;

/**
 * Call statistics over a sliding window: a snapshot of the hub's cumulative series a tick,
 * the last `keep` of them, so a rate or a quantile is the difference of two. Bounded by
 * keep x series (the series are bounded by call-stats.ts's MAX_SERIES).
 */
export class CallWindow {
  private readonly ring: { time: number; calls: Keyed }[] = [];

  constructor(private readonly keep = 61) {}

  push(time: number, calls: readonly CallSnapshot[]): void {
    this.ring.push({ time, calls: new Map(calls.map((c) => [key(c.caller, c.target, c.method), c])) });
    if (this.ring.length > this.keep) this.ring.shift();
  }

  /** The graph now: manifests' allowed calls, revocations, and the window's traffic. */
  graph(host: ConsoleHost): Graph {
    const manifests = host.manifests();
    const exposes = new Map(manifests.map((l) => [l.manifest.id, l.manifest.coordination.exposesMethods]));
    const last = this.ring[this.ring.length - 1];
    const first = this.ring[0];
    const windowS = last && first && last !== first ? (last.time - first.time) / 1000 : 0;
    const edges: GraphEdge[] = [];
    const calls = (from: string, to: string, method: string) => {
      const now = last?.calls.get(key(from, to, method));
      const then = first?.calls.get(key(from, to, method));
      const count = (now?.count ?? 0) - (then?.count ?? 0);
      const buckets = now ? now.buckets.map((b, i) => b - (then?.buckets[i] ?? 0)) : [];
      const p50 = quantileMs(buckets, 0.5);
      const p99 = quantileMs(buckets, 0.99);
      return {
        rate: windowS > 0 ? Math.round((count / windowS) * 100) / 100 : 0,
        errors: (now?.errors ?? 0) - (then?.errors ?? 0),
        total: now?.count ?? 0,
        ...(p50 !== undefined ? { p50Ms: p50 } : {}),
        ...(p99 !== undefined ? { p99Ms: p99 } : {}),
      };
    };
    for (const l of manifests) {
      const from = l.manifest.id;
      for (const consumed of l.manifest.coordination.consumesMethods) {
        const dot = consumed.indexOf('.');
        const [to, method] = dot < 0 ? ['host', consumed] : [consumed.slice(0, dot), consumed.slice(dot + 1)];
        edges.push({ from, to, method, dangling: to !== 'host' && !(exposes.get(to) ?? []).includes(method), revoked: host.grants.isMethodRevoked(from, consumed), ...calls(from, to, method) });
      }
    }
    // The host application may call any exposed method: its edges are the ones it has used.
    for (const c of last?.calls.values() ?? []) {
      if (c.caller === 'host' && exposes.get(c.target)?.includes(c.method)) edges.push({ from: 'host', to: c.target, method: c.method, dangling: false, revoked: false, ...calls('host', c.target, c.method) });
    }
    return { nodes: manifests.map((l) => ({ id: l.manifest.id, exposes: l.manifest.coordination.exposesMethods })), edges, windowS };
  }
}

function key(caller: string, target: string, method: string): string {
  return `${caller}\0${target}\0${method}`;
}

/**
 * The q-quantile of a histogram (per-bucket counts over CALL_BUCKETS, seconds) in ms, by
 * linear interpolation inside its bucket as Prometheus's histogram_quantile does; undefined
 * with no calls. Above the last bound it is that bound.
 */
export function quantileMs(buckets: readonly number[], q: number): number | undefined {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  const rank = q * total;
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (acc + n >= rank && n > 0) {
      const lo = i === 0 ? 0 : CALL_BUCKETS[i - 1]!;
      const hi = CALL_BUCKETS[i] ?? CALL_BUCKETS[CALL_BUCKETS.length - 1]!;
      const s = i >= CALL_BUCKETS.length ? hi : lo + ((hi - lo) * (rank - acc)) / n;
      return Math.round(s * 1e6) / 1e3;
    }
    acc += n;
  }
  return undefined;
}
