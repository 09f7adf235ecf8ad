import type { Resources } from '../manifest/types.js';
import type { WatchedLimits } from './types.js';

const MB = 1024 * 1024;

/** The limits a container gets from its manifest's resources (container-spec.ts), in the monitor's units. */
export function watchedLimits(r: Resources): WatchedLimits {
  return {
    memoryBytes: r.maxMemoryMB * MB,
    cpuPercent: r.maxCpuPercent,
    processes: r.maxProcesses,
    fileHandles: r.maxFileHandles,
    tmpBytes: r.maxTmpMB * MB,
    networkConnections: r.maxNetworkConnections,
  };
}
