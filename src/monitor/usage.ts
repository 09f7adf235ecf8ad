import type { CgroupSample } from './sampler.js';
import type { ResourceUsage, ResourceViolation, WatchedLimits } from './types.js';

/** What /proc and the egress proxy add to a cgroup sample. */
export interface UsageExtras {
  readonly fileHandles: number;
  readonly networkConnections: number;
  readonly violations: readonly ResourceViolation[];
  /** ms since the epoch. */
  readonly timestamp: number;
}

/**
 * The spec's ResourceUsage from two cgroup samples (CPU percent is the CPU time used between
 * them over the wall time between them, as `docker stats` computes it, in percent of one
 * core). Pure. Memory used is the kernel's usage less inactive file pages, as `docker stats`
 * reports it; an unlimited memory or CPU is reported with the limits the plugin was
 * started with.
 */
export function toUsage(pluginId: string, prev: CgroupSample | undefined, cur: CgroupSample, limits: WatchedLimits, extras: UsageExtras): ResourceUsage {
  const wallNs = prev ? (cur.at - prev.at) * 1e6 : 0;
  const cpuNs = prev ? cur.cpuUsageNs - prev.cpuUsageNs : 0;
  const percent = wallNs > 0 && cpuNs > 0 ? (cpuNs / wallNs) * 100 : 0;
  return {
    pluginId,
    timestamp: extras.timestamp,
    memory: {
      used: Math.max(0, cur.memoryUsage - cur.inactiveFile),
      peak: cur.memoryPeak,
      limit: Number.isFinite(cur.memoryLimit) ? cur.memoryLimit : limits.memoryBytes,
    },
    cpu: {
      percent: round(percent),
      limit: Number.isFinite(cur.cpuLimitPercent) ? round(cur.cpuLimitPercent) : limits.cpuPercent,
    },
    io: {
      fileHandles: extras.fileHandles,
      networkConnections: extras.networkConnections,
      diskReadBytes: cur.ioRead,
      diskWriteBytes: cur.ioWrite,
    },
    violations: [...extras.violations],
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
