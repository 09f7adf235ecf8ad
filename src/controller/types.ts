/**
 * What the controller shows of itself and its plugins: shared by the controller, the
 * control socket's server and client, and programs that embed LogoMesh. Types only, so a
 * client needs nothing of the controller's implementation.
 */

/** What the resource monitor shows (src/monitor/): the control socket's stats, usage and limits answers. */
export type { ChangedLimit, LimitChange } from '../monitor/enforce-limit.js';
export type { StatsRow } from '../monitor/stats-table.js';
export type { ResourceUsage, ResourceViolation, ViolationKind } from '../monitor/types.js';

export type PluginState = 'loaded' | 'starting' | 'ready' | 'restarting' | 'stopping' | 'stopped' | 'exited' | 'failed';

/** What `ps` shows of a container's start-up CPU boost. */
export interface BoostStatus {
  /** The quota while boosted, and the declared one it goes back to (percent of one core). */
  readonly cpuPercent: number;
  readonly declaredPercent: number;
  /** When it began (the container's start), and the hard deadline (ms since the epoch). */
  readonly since: number;
  readonly deadline: number;
  /** When the declared quota was back in place, and what ended the boost. */
  readonly endedAt?: number;
  readonly endedBy?: BoostEnd;
}

/** What ends a boost: the hello accepted, the deadline, an adoption, the container gone, or the engine refusing (the container is stopped). */
export type BoostEnd = 'ready' | 'deadline' | 'adopted' | 'gone' | 'failed';

/** What `ps` shows of a plugin. */
export interface PluginStatus {
  readonly id: string;
  readonly version: string;
  readonly runtime: string;
  readonly state: PluginState;
  readonly containerId?: string;
  readonly methods: readonly string[];
  readonly startedAt?: number;
  /** Load to ready, in ms, of the last start. */
  readonly startMs?: number;
  readonly exitCode?: number;
  readonly oomKilled?: boolean;
  readonly lastError?: { code: string; message: string };
  readonly droppedMessages: number;
  /** Restarts since it was loaded (crashes and failed health checks). */
  readonly restarts: number;
  /** When the next restart attempt is due (state restarting). */
  readonly restartAt?: number;
  /** The user its container runs as (its own): the owner a folder it is granted for writing needs. */
  readonly uid: number;
  /** In debug mode (`logomesh dev --debug`): its debugger, on the host's 127.0.0.1. */
  readonly debug?: { readonly port: number; readonly protocol: 'inspector' | 'dap' | 'delve' | 'gdb' };
  /**
   * Its warm standby, when it keeps one: a second container under the same limits (so the
   * plugin may hold up to twice its resources), starting, or waiting to be switched in;
   * `failed` with the last error after several were lost in a row.
   */
  readonly standby?: { readonly state: 'starting' | 'waiting' | 'failed'; readonly containerId?: string; readonly lastError?: { readonly code: string; readonly message: string } };
  /** The start-up CPU boost of its current container (docs/security.md#start-up-cpu-boost): on, or when and why it ended. */
  readonly boost?: BoostStatus;
}

/** Is the Docker engine answering? Shown by `ps`; restarts wait while it is not. */
export interface EngineStatus {
  readonly up: boolean;
  /** Since when (ms since the epoch) it has been up, or down. */
  readonly since: number;
  readonly lastError?: string;
}

/** The answer of `GET /v1/status` on the control socket. */
export interface ControllerStatus {
  readonly engine: EngineStatus;
  readonly home: string;
  readonly plugins: PluginStatus[];
}

/** What a path grant or revocation answers on the control socket. */
export interface PathGrantAnswer {
  readonly name: string;
  readonly hostPath: string;
  readonly containerPath?: string;
  readonly writable?: boolean;
  readonly state: string;
}

/** One line of a plugin's output, as the controller keeps it. */
export interface LogLine {
  readonly stream: 'stdout' | 'stderr';
  readonly time: number;
  readonly text: string;
}

/** One shared-memory segment, as `logomesh segments` shows it (GET /v1/segments). */
export interface SegmentRow {
  readonly id: string;
  readonly owner: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
  readonly holders: readonly { readonly plugin: string; readonly access: 'read' | 'write' }[];
  /** The owner's rights: `rw`, or `r` once read-only. */
  readonly mode: string;
  readonly createdAt: number;
  readonly ageMs: number;
}

/** One change `apply` found: the plugin and what changed, in words. */
export interface PlannedChange {
  readonly id: string;
  /** `manifest: resources.maxMemoryMB`, `files: main.py changed`, `signature`, `policy`. */
  readonly what: readonly string[];
}

/** One step of an apply, in the order they run. */
export interface PlanStep {
  readonly action: 'add' | 'replace' | 'remove';
  readonly id: string;
}

/** What `apply` does, and what `apply --dry-run` prints (docs/deploys.md). */
export interface DeployPlan {
  readonly added: readonly string[];
  readonly changed: readonly PlannedChange[];
  /** Loaded, not in the folder, and removed (`--prune`). */
  readonly removed: readonly string[];
  readonly unchanged: readonly string[];
  /** Loaded, not in the folder, and kept (no `--prune`). */
  readonly kept: readonly string[];
  /** Additions and replacements a dependency level of the new set at a time, then removals, dependents first. */
  readonly steps: readonly PlanStep[];
}

/** A step as it ran. */
export interface ApplyStep extends PlanStep {
  readonly ok: boolean;
  readonly ms: number;
  /** A replacement: until its new container was ready and took the calls over, then until the old one was gone. */
  readonly readyMs?: number;
  readonly retireMs?: number;
  /** A replacement of a running plugin (false: it was not running, and was simply started). */
  readonly handover?: boolean;
  readonly error?: { readonly code: string; readonly message: string };
}

/** The answer of `POST /v1/apply`. */
export interface ApplyResult {
  readonly dir: string;
  readonly dryRun: boolean;
  readonly plan: DeployPlan;
  readonly steps: readonly ApplyStep[];
  readonly ms: number;
}
