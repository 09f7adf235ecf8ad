import type { SegmentRow } from '../index.js';

/** `logomesh segments` as a table people can read: one row a segment, the oldest first. */
export function segmentsTable(rows: readonly SegmentRow[]): string {
  if (rows.length === 0) return 'no segments in the pool';
  const table = [
    ['SEGMENT', 'OWNER', 'SIZE', 'MODE', 'HOLDERS', 'AGE'],
    ...rows.map((r) => [r.id, r.owner, bytes(r.size), r.mode, r.holders.map((h) => `${h.plugin}(${h.access === 'write' ? 'rw' : 'r'})`).join(',') || '-', age(r.ageMs)]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
