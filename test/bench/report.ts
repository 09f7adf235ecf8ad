import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, type Row } from './stats.js';

/** The sections of the report, in order, with their titles. */
export const SECTIONS: readonly [string, string][] = [
  ['latency', 'Request/response latency'],
  ['throughput', 'Throughput'],
  ['start', 'Load to ready (images built)'],
  ['standby', 'Restart to ready with a warm standby'],
  ['memory', 'Host memory per idle plugin'],
  ['run', 'One-shot runs'],
  ['cli', 'Commands as users run them'],
  ['scale', 'Scale on one host'],
  ['soak', 'Under attack: a hostile host client floods the hub'],
  ['Resource monitor', 'Resource monitor (docs/monitoring.md#measured)'],
];

/** What the figures of one run are: for comparing runs (docs/benchmarks.json). */
export interface Report {
  readonly date: string;
  readonly machine: string;
  /** The host's 1-minute load average before and after the run: the machine is shared. */
  readonly load: { readonly before: number; readonly after: number };
  readonly rounds: number;
  readonly rows: readonly Row[];
}

function idOf(r: Row): string {
  return r.id ?? `${r.section}.${r.name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase()}`;
}

function verdict(r: Row): string {
  if (!r.target) return '';
  if (r.met === undefined) return r.target;
  return r.met ? `${r.target}: met` : `${r.target}: **missed**${r.why ? ` (${r.why})` : ''}`;
}

function table(rows: readonly Row[]): string[] {
  const withTargets = rows.some((r) => r.target);
  return [
    `| measurement | value | baseline (same run) | baseline value | ratio |${withTargets ? ' target |' : ''}`,
    `|---|---:|---|---:|---:|${withTargets ? '---|' : ''}`,
    ...rows.map((r) => {
      const d = r.unit === 'MiB' || r.unit === 's' || r.unit === '% of a core' ? 1 : 0;
      const ratio = Number.isFinite(r.baselineValue) && r.baselineValue !== 0 ? fmt(r.value / r.baselineValue, 2) : 'n/a';
      // The resource monitor's rows say their figure as text (p50 / p99, or a sum and its parts).
      const shown = r.section === 'Resource monitor' && r.subject ? r.subject : `${fmt(r.value, d)} ${r.unit}`;
      return `| ${r.name} | ${shown} | ${r.baseline} | ${fmt(r.baselineValue, d)} ${r.unit} | ${ratio} |${withTargets ? ` ${verdict(r)} |` : ''}`;
    }),
    '',
  ];
}

/** docs/benchmarks.json: every figure with its baseline, ratio and target, by a stable id. */
export function writeJson(file: string, report: Report): void {
  const rows = report.rows.map((r) => ({
    id: idOf(r),
    section: r.section,
    name: r.name,
    ...(r.subject ? { subject: r.subject } : {}),
    value: Number(r.value.toFixed(3)),
    unit: r.unit,
    baseline: r.baseline,
    baselineValue: Number.isFinite(r.baselineValue) ? Number(r.baselineValue.toFixed(3)) : null,
    ratio: Number.isFinite(r.baselineValue) && r.baselineValue !== 0 ? Number((r.value / r.baselineValue).toFixed(3)) : null,
    ...(r.target ? { target: r.target } : {}),
    ...(r.met !== undefined ? { met: r.met } : {}),
    ...(r.why && r.met === false ? { why: r.why } : {}),
  }));
  writeFileSync(file, `${JSON.stringify({ ...report, rows }, null, 2)}\n`);
}

/** docs/benchmarks.md: the tables, the targets met or missed, and how each figure is taken. */
export function writeMarkdown(file: string, report: Report, notes: readonly string[]): string {
  const sections = SECTIONS.filter(([s]) => report.rows.some((r) => r.section === s));
  const targets = report.rows.filter((r) => r.met !== undefined);
  const missed = targets.filter((r) => r.met === false);
  const lines = [
    '# Benchmarks',
    '',
    'Produced by `npm run bench` (test/bench/), which also writes every figure, its baseline, ratio',
    'and target to [benchmarks.json](benchmarks.json) to compare runs. Every figure stands beside a',
    'baseline measured in the same run, so the ratio is what to read: these machines are shared and',
    'noisy.',
    '',
    `Machine: ${report.machine}. Load average ${fmt(report.load.before, 1)} before the run, ${fmt(report.load.after, 1)} after. Rounds: ${report.rounds}. Date: ${report.date}.`,
    '',
    `Targets: ${targets.length - missed.length} of ${targets.length} met${missed.length ? `; missed: ${missed.map((r) => r.name).join('; ')}` : ''}.`,
    '',
    ...sections.flatMap(([s, title]) => [`## ${title}`, '', ...table(report.rows.filter((r) => r.section === s))]),
    ...notes,
  ];
  const text = lines.join('\n');
  writeFileSync(file, text);
  return text;
}

export function docsFile(repo: string, name: string): string {
  return path.join(repo, 'docs', name);
}
