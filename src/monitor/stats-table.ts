import type { ResourceUsage } from './types.js';

/** What `logomesh stats` shows of a plugin beyond its ResourceUsage: processes now and their limit. */
export interface StatsRow {
  readonly usage: ResourceUsage;
  readonly processes?: { readonly current: number; readonly limit: number };
}

/** Bytes the way `docker stats` shows them: 1024-based, one decimal below 100. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = i === 0 ? String(Math.round(v)) : v < 100 ? v.toFixed(1) : String(Math.round(v));
  return `${shown}${units[i]}`;
}

function percent(n: number): string {
  return `${n.toFixed(2)}%`;
}

/**
 * `logomesh stats` as a table like `docker stats`: one row per plugin, sorted by id. Pure.
 * MEM % is of the limit; CPU % is of one core, next to the plugin's quota.
 */
export function statsTable(rows: readonly StatsRow[]): string {
  const header = ['PLUGIN', 'CPU %', 'CPU LIMIT', 'MEM USAGE / LIMIT', 'MEM %', 'PEAK', 'PIDS', 'FILES', 'CONNS', 'DISK READ / WRITE', 'VIOLATIONS'];
  const body = [...rows]
    .sort((a, b) => a.usage.pluginId.localeCompare(b.usage.pluginId))
    .map(({ usage: u, processes }) => [
      u.pluginId,
      percent(u.cpu.percent),
      percent(u.cpu.limit),
      `${formatBytes(u.memory.used)} / ${formatBytes(u.memory.limit)}`,
      percent(u.memory.limit > 0 ? (u.memory.used / u.memory.limit) * 100 : 0),
      formatBytes(u.memory.peak),
      processes ? `${processes.current}/${processes.limit}` : '-',
      String(u.io.fileHandles),
      String(u.io.networkConnections),
      `${formatBytes(u.io.diskReadBytes)} / ${formatBytes(u.io.diskWriteBytes)}`,
      violationSummary(u),
    ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The count of violations kept, and the kinds of the latest ones: `3 (oom-kill, pids-limit)`. */
function violationSummary(u: ResourceUsage): string {
  if (u.violations.length === 0) return '0';
  const kinds = [...new Set(u.violations.slice(-5).map((v) => v.kind))];
  return `${u.violations.length} (${kinds.join(', ')})`;
}

/** `logomesh stats --json`: the spec's ResourceUsage of each plugin, one array, sorted by id. */
export function statsJson(rows: readonly StatsRow[]): string {
  return JSON.stringify(
    [...rows].sort((a, b) => a.usage.pluginId.localeCompare(b.usage.pluginId)).map((r) => (r.processes ? { ...r.usage, processes: r.processes } : r.usage)),
    null,
    2,
  );
}
