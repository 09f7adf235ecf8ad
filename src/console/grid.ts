import { isLogoMeshError } from '../errors.js';
import type { PluginStatus, StatsRow } from '../controller/types.js';
import type { ConsoleHost } from './host.js';
import type { Sample } from './history.js';

/** One row of the live grid: what `ps` and `stats` say of a plugin, together. */
export interface GridRow {
  readonly id: string;
  readonly state: string;
  readonly runtime: string;
  readonly version: string;
  readonly restarts: number;
  readonly lastError?: { readonly code: string; readonly message: string };
  readonly oomKilled?: boolean;
  readonly startedAt?: number;
  /** Percent of one core, and the quota. */
  readonly cpu?: number;
  readonly cpuLimit?: number;
  /** Bytes. */
  readonly memory?: number;
  readonly memoryLimit?: number;
  readonly pids?: number;
  readonly pidsLimit?: number;
  readonly handles?: number;
  readonly connections?: number;
}

export interface GridTick {
  readonly time: number;
  readonly rows: GridRow[];
  /** Why there are no usage columns (no monitor: not root, no cgroups), when there are none. */
  readonly monitor?: string;
  /** The samples of the running plugins, for the history. */
  readonly samples: Map<string, Sample>;
}

/** Read the grid once: the plugins' states and, where the monitor runs, their usage. */
export function readGrid(host: ConsoleHost, now = Date.now()): GridTick {
  let stats: StatsRow[] = [];
  let monitor: string | undefined;
  try {
    stats = host.stats();
  } catch (err) {
    // Without a monitor the grid still shows states; the page says why the numbers are missing.
    monitor = isLogoMeshError(err) ? err.message : String(err);
  }
  const byId = new Map(stats.map((s) => [s.usage.pluginId, s]));
  const samples = new Map<string, Sample>();
  const rows = host.list().map((p) => {
    const s = byId.get(p.id);
    if (s) samples.set(p.id, { cpu: s.usage.cpu.percent, memory: s.usage.memory.used, pids: s.processes?.current ?? 0 });
    return row(p, s);
  });
  return { time: now, rows, samples, ...(monitor ? { monitor } : {}) };
}

function row(p: PluginStatus, s: StatsRow | undefined): GridRow {
  const u = s?.usage;
  return {
    id: p.id,
    state: p.state,
    runtime: p.runtime,
    version: p.version,
    restarts: p.restarts,
    ...(p.lastError ? { lastError: p.lastError } : {}),
    ...(p.oomKilled ? { oomKilled: true } : {}),
    ...(p.startedAt !== undefined ? { startedAt: p.startedAt } : {}),
    ...(u
      ? {
          cpu: round(u.cpu.percent),
          cpuLimit: u.cpu.limit,
          memory: u.memory.used,
          memoryLimit: u.memory.limit,
          handles: u.io.fileHandles,
          connections: u.io.networkConnections,
        }
      : {}),
    ...(s?.processes ? { pids: s.processes.current, pidsLimit: s.processes.limit } : {}),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
