/**
 * The monitor's data shapes. ResourceUsage is the spec's schema (../shared/SPEC.md,
 * "Resource Monitoring Schema") field for field; ResourceViolation is what each violation
 * event carries.
 */

/** What went over a limit or a threshold. See docs/monitoring.md#violations. */
export type ViolationKind =
  /** The kernel's OOM killer killed a process of the plugin (memory limit). */
  | 'oom-kill'
  /** A fork or clone failed because the plugin had maxProcesses processes. */
  | 'pids-limit'
  /** Memory use crossed monitoring.alerts.memoryPercent of the limit. */
  | 'memory-threshold'
  /** Memory use stayed above monitoring.killOnExceed.memory for its forMs. */
  | 'memory-exceeded'
  /** The CPU quota throttled the plugin in more than a policy's share of periods over its window. */
  | 'cpu-throttled'
  /** Pressure stall (PSI) above a policy's share of its window, for cpu, memory or io. */
  | 'pressure'
  /** /tmp (its tmpfs, maxTmpMB) is full, or crossed monitoring.alerts.tmpPercent. */
  | 'tmp-full'
  /** A process of the plugin holds maxFileHandles open files, or crossed alerts.fileHandlesPercent. */
  | 'file-handles'
  /** The plugin has maxNetworkConnections open through its egress proxy. */
  | 'connection-limit';

export const VIOLATION_KINDS: readonly ViolationKind[] = [
  'oom-kill',
  'pids-limit',
  'memory-threshold',
  'memory-exceeded',
  'cpu-throttled',
  'pressure',
  'tmp-full',
  'file-handles',
  'connection-limit',
];

/** What the monitor did about a violation. */
export type ViolationAction = 'none' | 'alert' | 'kill';

export interface ResourceViolation {
  readonly kind: ViolationKind;
  /** The plugin id. */
  readonly plugin: string;
  /** What was measured (bytes, percent, count: see unit). */
  readonly value: number;
  /** The limit or threshold it crossed, in the same unit. */
  readonly limit: number;
  readonly unit: 'bytes' | 'percent' | 'count';
  /** When it was seen, milliseconds since the epoch. */
  readonly time: number;
  /** alert: a threshold the manifest or policy set; kill: a killOnExceed rule (the monitor killed the plugin); none: a kernel limit was hit. */
  readonly action: ViolationAction;
  /** How it was seen: a kernel notification, or a periodic read. */
  readonly source: 'notification' | 'poll';
  /** Words for the log and the audit trail (which pressure, which process, which rule). */
  readonly detail: string;
}

/** The spec's ResourceUsage. Bytes, percent of one CPU core (0-100 per core), counts. */
export interface ResourceUsage {
  pluginId: string;
  timestamp: number;
  memory: { used: number; peak: number; limit: number };
  cpu: { percent: number; limit: number };
  io: { fileHandles: number; networkConnections: number; diskReadBytes: number; diskWriteBytes: number };
  violations: ResourceViolation[];
}

/** The limits a plugin's container was created with (the manifest's resources, or a live change). */
export interface WatchedLimits {
  readonly memoryBytes: number;
  /** Percent of one core (manifest maxCpuPercent). */
  readonly cpuPercent: number;
  readonly processes: number;
  /** Per process (the nofile ulimit). */
  readonly fileHandles: number;
  readonly tmpBytes: number;
  readonly networkConnections: number;
}
