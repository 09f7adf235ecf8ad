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
  /**
   * Its warm standby, when it keeps one: a second container under the same limits (so the
   * plugin may hold up to twice its resources), starting, or waiting to be switched in;
   * `failed` with the last error after several were lost in a row.
   */
  readonly standby?: { readonly state: 'starting' | 'waiting' | 'failed'; readonly containerId?: string; readonly lastError?: { readonly code: string; readonly message: string } };
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
