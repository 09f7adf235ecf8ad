import type { BoostStatus, PluginStatus } from '../index.js';

/** `ps` as a table people can read. */
export function psTable(list: readonly PluginStatus[]): string {
  const rows = [
    ['PLUGIN', 'STATE', 'RUNTIME', 'VERSION', 'READY IN', 'CPU BOOST', 'RESTARTS', 'METHODS', 'LAST ERROR'],
    ...list.map((p) => [
      p.id,
      p.state,
      p.runtime,
      p.version,
      p.startMs !== undefined ? `${p.startMs} ms` : '-',
      p.boost ? boostText(p.boost) : '-',
      String(p.restarts),
      p.methods.join(',') || '-',
      p.lastError ? `${p.lastError.code}: ${p.lastError.message.split('\n')[0]}` : '',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The start-up CPU boost of the current container: `100%->25% ready +212 ms`, or `100% until +2000 ms` while on. */
export function boostText(b: BoostStatus): string {
  if (b.endedAt === undefined) return `${b.cpuPercent}% until +${b.deadline - b.since} ms`;
  return `${b.cpuPercent}%->${b.declaredPercent}% ${b.endedBy ?? 'ended'} +${b.endedAt - b.since} ms`;
}
