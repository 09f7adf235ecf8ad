import type { PluginStatus } from '../index.js';

/** `ps` as a table people can read. */
export function psTable(list: readonly PluginStatus[]): string {
  const rows = [
    ['PLUGIN', 'STATE', 'RUNTIME', 'VERSION', 'READY IN', 'RESTARTS', 'METHODS', 'LAST ERROR'],
    ...list.map((p) => [
      p.id,
      p.state,
      p.runtime,
      p.version,
      p.startMs !== undefined ? `${p.startMs} ms` : '-',
      String(p.restarts),
      p.methods.join(',') || '-',
      p.lastError ? `${p.lastError.code}: ${p.lastError.message.split('\n')[0]}` : '',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}
