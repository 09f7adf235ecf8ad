/** Small statistics and timing helpers for the benchmarks. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

export async function timedMs(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export function fmt(x: number, digits = 0): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** One line of the results: a subject beside its baseline, both measured in this run. */
export interface Row {
  /** A stable key for comparing runs (docs/benchmarks.json); derived from the name when absent. */
  readonly id?: string;
  readonly section: string;
  readonly name: string;
  readonly subject: string;
  readonly baseline: string;
  readonly value: number;
  readonly baselineValue: number;
  readonly unit: string;
  /** The target from the product's requirements, as text, and whether this run met it. */
  readonly target?: string;
  readonly met?: boolean;
  /** Why a missed target was missed (the note's finding), shown beside it. */
  readonly why?: string;
}
