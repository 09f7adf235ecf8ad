import type { Docker } from '../engine/docker.js';
import type { HubLimits } from '../hub/limits-from-env.js';
import type { PrepareOptions } from '../images/plugin-image.js';
import type { Logger } from '../log.js';
import type { Policy } from '../policy/policy.js';
import type { Backend } from './backend.js';
import type { Home } from './home.js';

/** The resource monitor and the plugins' Docker health check (docs/monitoring.md). */
export interface MonitoringOptions {
  /** false: no resource monitor (no usage, violations or stats). Default: on, when the controller runs as root. */
  readonly enabled?: boolean;
  /** The monitor's poll interval for what has no kernel notification, ms (default 500). */
  readonly pollMs?: number;
  /** false: no cgwatch helper (violations read at each poll, no health check program). Default: built from images/cgwatch. */
  readonly cgwatch?: false;
  /** How often the engine runs each plugin's health check, ms (default 120 000: each costs the engine about 150 ms of CPU); false: no Docker health check. */
  readonly healthCheckMs?: number | false;
}

export interface ControllerOptions {
  readonly log: Logger;
  readonly home: Home;
  readonly docker?: Docker;
  /**
   * Where plugins run (default: the Docker engine, `docker` or DOCKER_HOST). A connected
   * `KubeBackend` runs them on a Kubernetes cluster (docs/kubernetes.md#the-kubernetes-backend).
   */
  readonly backend?: Backend;
  /** How long a plugin has from container start to hello (default 15 s). */
  readonly startTimeoutMs?: number;
  /** Plugins started at once by startAll, within a dependency level (default 16; LOGOMESH_START_CONCURRENCY). */
  readonly startConcurrency?: number;
  /** How long a plugin has to exit after the shutdown message, then after SIGTERM (default 5 s each). */
  readonly stopGraceMs?: number;
  /** Hub options. */
  readonly hubToken?: string;
  readonly maxMessageBytes?: number;
  readonly pingIntervalMs?: number;
  /** Per-plugin hub rate limit in messages a second (default 20000; see Hub). */
  readonly rateLimit?: number;
  /** The other hub limits (host clients, queues, subscriptions); see Hub and hubLimitsFromEnv. */
  readonly hubLimits?: HubLimits;
  /**
   * Host methods a host client on the hub's TCP endpoint may register and serve to plugins
   * (`logomesh up --host-methods`, LOGOMESH_HOST_METHODS; default none). Methods this
   * process serves with registerMethod need no declaration.
   */
  readonly hostMethods?: readonly string[];
  /**
   * Start every plugin under its runtime's debugger, reachable on the host's 127.0.0.1
   * (debug/debug-mode.ts). For `logomesh dev --debug` only: `logomesh up` refuses it.
   */
  readonly debug?: boolean;
  /** Audit trail rotation (size of a file, files kept); see AuditLog. */
  readonly auditRotation?: { readonly maxBytes?: number; readonly keep?: number };
  /** How often the engine is pinged while it answers (default 2 s). */
  readonly engineCheckMs?: number;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
  /** Operator policy every plugin is verified against at load (default: the file LOGOMESH_POLICY names, else none). */
  readonly policy?: Policy;
  /**
   * Existing networks the egress proxy joins besides its own bridge, so that plugins can
   * reach allowed hosts on them by name (a compose project's services, a test's servers).
   */
  readonly egressNetworks?: readonly string[];
  /** The shared-memory pool: its size, and the most one plugin's segments may hold (defaults: 1 GiB and the pool's size; a plugin never more than its maxMemoryMB). */
  readonly sharedMemory?: { readonly poolBytes?: number; readonly maxPluginBytes?: number };
  /**
   * Follow the kernel's records of plugin processes (default true), in the kernel log and
   * the audit daemon's: a seccomp kill is audited with the system call's name and stops the
   * plugin; a refusal reported by LogoMesh's kernel audit rules is audited.
   */
  readonly kernelLog?: boolean;
  /** The resource monitor and the Docker health check of plugin containers (default: both on; the monitor needs root). */
  readonly monitoring?: MonitoringOptions;
  /**
   * Plugins that keep a warm standby whatever their manifest says (`*`: every plugin that
   * can have one; see docs/manifest.md#standby). Default: LOGOMESH_STANDBY under `logomesh up`.
   */
  readonly standby?: readonly string[];
  /**
   * Test hooks at fixed points of a start, so that a test makes its swaps there and not by
   * timing: right before the plugin's host paths are resolved, once they are held and
   * staged (right before the container is created), and once a compiled plugin's build
   * context is taken.
   */
  readonly testHooks?: {
    readonly beforeMounts?: (pluginId: string) => void | Promise<void>;
    readonly afterMounts?: (pluginId: string) => void | Promise<void>;
    readonly afterSnapshot?: PrepareOptions['afterSnapshot'];
  };
}

/** The defaults of ControllerOptions, in one place. */
export const DEFAULTS = {
  startTimeoutMs: 15_000,
  startConcurrency: 16,
  stopGraceMs: 5_000,
  engineCheckMs: 2_000,
} as const;
