import type { MountSettings } from 'dockerode';

/** Where the health check program is mounted in a plugin container (read-only, one file). */
const HEALTH_BINARY_TARGET = '/run/logomesh-health';
/** The controller's report, in the plugin's hub socket folder (written by controller/health-report.ts). */
export const HEALTH_REPORT_NAME = 'health';

/** A Docker health check that shows the hub's view of the plugin (docs/monitoring.md#docker-health-check). */
export interface HealthCheckSpec {
  /** Host path of the lm-health program (images/cgwatch/lm-health.c). */
  readonly binary: string;
  /** How often the engine runs it. */
  readonly intervalMs: number;
  /** A report older than this is unhealthy: the controller stopped reporting. */
  readonly maxAgeSeconds: number;
  /** Failed checks in this first stretch do not count (the plugin is starting). */
  readonly startPeriodMs: number;
}

const NS_PER_MS = 1_000_000;

/** The interval of each container's check when there are few (docs/monitoring.md#docker-health-check). */
export const HEALTH_INTERVAL_MS = 120_000;
/**
 * The engine's checks of all the containers together come at most once per this on average:
 * each is an exec (runc, the shim, containerd, dockerd), about 40 ms of the host's CPU
 * measured at 50 plugins, so one every 2 s is about 2% of a core however many plugins run.
 */
export const HEALTH_EXEC_SPACING_MS = 2_000;

/**
 * The interval for a container's check when `containers` have one: 120 s, or longer so that
 * the host-wide rate of execs stays bounded (200 containers: 400 s). The Docker check only
 * shows the controller's view, which the controller's own pings over the hub act on, so a
 * slower check delays what `docker ps` shows, never what the controller does.
 */
export function healthCheckInterval(containers: number): number {
  return Math.max(HEALTH_INTERVAL_MS, Math.ceil(Math.max(0, containers)) * HEALTH_EXEC_SPACING_MS);
}

/**
 * The spec's part of a health check (CIS Docker Benchmark 5.27): the program mounted
 * read-only, and the engine told to run it with the report's path inside the container.
 * It needs no shell and no network, so it works in every runtime image (Go's is empty).
 */
export function healthCheckSpec(h: HealthCheckSpec, reportPath: string): { mount: MountSettings; healthcheck: { Test: string[]; Interval: number; Timeout: number; Retries: number; StartPeriod: number } } {
  return {
    mount: { Type: 'bind', Source: h.binary, Target: HEALTH_BINARY_TARGET, ReadOnly: true },
    healthcheck: {
      Test: ['CMD', HEALTH_BINARY_TARGET, reportPath, String(h.maxAgeSeconds)],
      Interval: h.intervalMs * NS_PER_MS,
      Timeout: 5_000 * NS_PER_MS,
      Retries: 2,
      StartPeriod: h.startPeriodMs * NS_PER_MS,
    },
  };
}
