import type { Docker } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { ControllerContext } from './context.js';
import type { EgressHandle } from './egress-handle.js';
import type { Managed } from './managed.js';
import type { Supervisor } from './supervisor.js';

/** The backends a controller runs plugins on. */
export type BackendName = 'docker' | 'kubernetes';

/** Where a workload is, when the backend lost sight of it for a while and looks again. */
export type WorkloadProbe = { readonly state: 'running' } | { readonly state: 'exited'; readonly exitCode: number } | { readonly state: 'gone' };

/**
 * One running instance of a plugin: a container on Docker, the Pod of its Deployment on
 * Kubernetes. What the launcher creates and the supervisor follows; `PluginContainer` and
 * `cluster/plugin-workload.ts` implement it.
 */
export interface Workload {
  readonly id: string;
  /**
   * Resolves with the exit code once it ends; rejects when the backend lost sight of it (the
   * engine went away), which is not an exit: the supervisor probes again once it answers.
   */
  wait(): Promise<number>;
  /** SIGTERM, then SIGKILL after `graceSeconds`; already stopped or gone is fine. */
  stop(graceSeconds: number): Promise<void>;
  /** SIGKILL now, and wait for the end. */
  kill(): Promise<void>;
  /** Remove it and what is only its own; idempotent. */
  remove(): Promise<void>;
  /**
   * Was an exit with this code the kernel's OOM killer, by the backend's own record? `patient`
   * (the default): look again for a while where that record lags; false: one look (the
   * kernel's own notification is at hand).
   */
  oomKilled(exitCode: number, patient?: boolean): Promise<boolean>;
  /** Look again after a lost wait; throws while the backend does not answer. */
  probe(): Promise<WorkloadProbe>;
}

/** A plugin's way from `loaded` to `ready` and back (the Docker backend's is `Launcher`). */
export interface Lifecycle {
  start(m: Managed): Promise<void>;
  stop(m: Managed): Promise<void>;
  /** Kill the workload now, no grace; its exit is expected. Resolves with when the kill was confirmed. */
  killAtOnce(m: Managed): Promise<number>;
  /** Remove the workload and what it needed; never throws. */
  teardown(m: Managed): Promise<void>;
}

/** The one-time reconciliation with what an earlier controller of this home left. */
export interface Reconciler {
  reconcile(): Promise<void>;
}

/**
 * Where plugins run: the Docker engine of this host (`DockerBackend`) or a Kubernetes
 * cluster (`KubeBackend`). The controller's other parts (registry, supervisor and its
 * restart policy, hub, grants, audit, saved state) are the same on both.
 */
export interface Backend {
  readonly name: BackendName;
  /** What `ps` calls it when it does not answer: `the Docker engine`, `the Kubernetes API server`. */
  readonly what: string;
  /** Throws when it does not answer (the engine watch pings this). */
  ping(): Promise<void>;
  /** The parts that act on workloads, built once by the controller. */
  parts(cx: ControllerContext, supervisor: Supervisor): { readonly lifecycle: Lifecycle; readonly reconciler: Reconciler };
  /** Take a host off a running plugin's egress allow-list now; false when it applies at the next start. */
  revokeHost(pluginId: string, host: string): Promise<boolean>;
  /** The backend answers again after an outage. */
  answersAgain(): void;
  /** Forget a plugin for good (unloaded): what outlives its restarts (its hub key on Kubernetes). */
  unloaded(pluginId: string): Promise<void>;
  /** Remove whatever of this controller is left (a failed stop's leftovers); never throws. */
  removeAll(): Promise<void>;
  close(): Promise<void>;
}

/** The Docker-only parts of the context, for the Docker backend's launcher and adoption. */
export interface DockerParts {
  readonly docker: Docker;
  readonly egress: EgressHandle;
}

/** What only the Docker backend has; LM_INTERNAL if a Docker part is reached on another backend (a bug). */
export function dockerParts(backend: Backend): DockerParts {
  const parts = (backend as Backend & { dockerParts?: () => DockerParts }).dockerParts?.();
  if (!parts) throw new LogoMeshError('LM_INTERNAL', `a Docker part of the controller was reached on the ${backend.name} backend`, { backend: backend.name });
  return parts;
}
