import type { Docker } from '../index.js';

/** What a plugin's container uses, as the engine's stats count it. */
export interface ContainerUsage {
  readonly pluginId: string;
  readonly memory: { readonly used: number; readonly limit: number };
  /** CPU over the engine's last sampling interval, in percent of one core. */
  readonly cpu: { readonly percent: number };
  readonly processes: number;
}

interface Stats {
  memory_stats?: { usage?: number; limit?: number; stats?: { total_inactive_file?: number; inactive_file?: number } };
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  pids_stats?: { current?: number };
}

/** One sample of the engine's stats of a container, the way `docker stats` computes them. */
export async function usageOf(docker: Docker, containerId: string, pluginId: string): Promise<ContainerUsage> {
  const s = (await docker.getContainer(containerId).stats({ stream: false })) as Stats;
  const inactive = s.memory_stats?.stats?.total_inactive_file ?? s.memory_stats?.stats?.inactive_file ?? 0;
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus ?? 1;
  return {
    pluginId,
    memory: { used: Math.max(0, (s.memory_stats?.usage ?? 0) - inactive), limit: s.memory_stats?.limit ?? 0 },
    cpu: { percent: systemDelta > 0 && cpuDelta > 0 ? Math.round((cpuDelta / systemDelta) * cpus * 10_000) / 100 : 0 },
    processes: s.pids_stats?.current ?? 0,
  };
}
