import type Dockerode from 'dockerode';
import { engineError } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import { CPU_PERIOD_US, GVISOR_HOST_THREADS, cpuQuotaUs, cpuShares } from '../sandbox/container-spec.js';

/** A live change of a running plugin's limits. Absent fields stay as they are. */
export interface LimitChange {
  readonly memoryMB?: number;
  /** Percent of one core, as the manifest's maxCpuPercent. */
  readonly cpuPercent?: number;
  readonly processes?: number;
}

/** One limit that changed: the engine's field, before and after. */
export interface ChangedLimit {
  readonly resource: 'memoryMB' | 'cpuPercent' | 'processes';
  readonly from: number | null;
  readonly to: number;
}

/** The bounds the manifest schema accepts (src/manifest/manifest-v2.schema.json resources). */
export const LIMIT_BOUNDS: Readonly<Record<keyof LimitChange, { min: number; max: number }>> = {
  memoryMB: { min: 16, max: 65536 },
  cpuPercent: { min: 1, max: 800 },
  processes: { min: 4, max: 4096 },
};

const MB = 1024 * 1024;

/** Check a change before anything is sent to the engine: LM_LIMIT_INVALID naming the field. */
export function checkLimitChange(change: LimitChange): void {
  const keys = Object.keys(change);
  if (keys.length === 0) throw new LogoMeshError('LM_LIMIT_INVALID', 'a limit change names no limit', { expected: 'memoryMB, cpuPercent or processes', found: 'nothing' });
  for (const key of keys) {
    // Own keys only: '__proto__' or 'constructor' from a JSON body must not find Object's.
    const bounds = Object.hasOwn(LIMIT_BOUNDS, key) ? LIMIT_BOUNDS[key as keyof LimitChange] : undefined;
    const value = change[key as keyof LimitChange];
    if (!bounds) throw new LogoMeshError('LM_LIMIT_INVALID', `unknown limit '${key}'`, { path: `/${key}`, expected: 'memoryMB, cpuPercent or processes', found: key });
    if (!Number.isInteger(value) || (value as number) < bounds.min || (value as number) > bounds.max) {
      throw new LogoMeshError('LM_LIMIT_INVALID', `${key}: expected an integer from ${bounds.min} to ${bounds.max}, found ${JSON.stringify(value)}`, {
        path: `/${key}`,
        expected: `an integer from ${bounds.min} to ${bounds.max}`,
        found: JSON.stringify(value),
      });
    }
  }
}

/**
 * Change a running plugin container's memory, CPU or process limit in place (`docker
 * update`): the kernel applies it at once, without a restart. Memory and memory+swap move
 * together, so there is still no swap; CPU shares follow the CPU quota as at creation.
 * Returns what changed (the caller records who changed it in the audit trail). Throws
 * LM_LIMIT_INVALID for a bad value or a container that is not running, LM_ENGINE_ERROR
 * when the engine refuses (such as memory below what the plugin uses now).
 */
export async function enforceLimit(container: Dockerode.Container, change: LimitChange): Promise<ChangedLimit[]> {
  checkLimitChange(change);
  let info: Dockerode.ContainerInspectInfo;
  try {
    info = await container.inspect();
  } catch (err) {
    throw engineError(`inspect container ${container.id}`, err, { container: container.id });
  }
  if (!info.State.Running) {
    throw new LogoMeshError('LM_LIMIT_INVALID', `container ${container.id} is not running (${info.State.Status}): its limits cannot change live`, {
      container: container.id,
      expected: 'a running container',
      found: info.State.Status,
    });
  }
  const hc = info.HostConfig;
  const update: Record<string, number> = {};
  const changed: ChangedLimit[] = [];
  if (change.memoryMB !== undefined) {
    const bytes = change.memoryMB * MB;
    update.Memory = bytes;
    update.MemorySwap = bytes;
    changed.push({ resource: 'memoryMB', from: hc.Memory ? hc.Memory / MB : null, to: change.memoryMB });
  }
  if (change.cpuPercent !== undefined) {
    update.CpuPeriod = CPU_PERIOD_US;
    update.CpuQuota = cpuQuotaUs(change.cpuPercent);
    update.CpuShares = cpuShares(change.cpuPercent);
    const period = hc.CpuPeriod || CPU_PERIOD_US;
    changed.push({ resource: 'cpuPercent', from: hc.CpuQuota && hc.CpuQuota > 0 ? Math.round((hc.CpuQuota / period) * 100) : null, to: change.cpuPercent });
  }
  if (change.processes !== undefined) {
    // As at creation: under gVisor the pids cgroup also holds the sandbox's own threads.
    const extra = hc.Runtime === 'runsc' ? GVISOR_HOST_THREADS : 0;
    update.PidsLimit = change.processes + extra;
    changed.push({ resource: 'processes', from: hc.PidsLimit ? hc.PidsLimit - extra : null, to: change.processes });
  }
  try {
    await container.update(update);
  } catch (err) {
    throw engineError(`update the limits of container ${container.id}`, err, { container: container.id, update });
  }
  return changed.filter((c) => c.from !== c.to);
}
