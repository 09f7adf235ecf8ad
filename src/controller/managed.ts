import type { LoadedManifest } from '../manifest/types.js';
import type { LimitChange } from '../monitor/index.js';
import type { SignedContent } from '../signing/signature.js';
import type { Workload } from './backend.js';
import { LogBuffer } from './log-buffer.js';
import type { PluginState } from './types.js';

/**
 * One loaded plugin as the controller holds it: its manifest, where it is in its
 * lifecycle, its container, its output, its failure history. The registry owns the
 * records; the launcher and the supervisor change their lifecycle fields, one operation
 * at a time (`serialize`).
 */
export interface Managed {
  readonly loaded: LoadedManifest;
  state: PluginState;
  /** Its container (Docker) or the Pod of its Deployment (Kubernetes). */
  container?: Workload;
  startedAt?: number;
  startMs?: number;
  exitCode?: number;
  oomKilled?: boolean;
  lastError?: { code: string; message: string };
  readonly logs: LogBuffer;
  restarts: number;
  /** Consecutive failures; reset once the plugin has stayed ready for a while. */
  retries: number;
  readySince?: number;
  restartAt?: number;
  healthTimer?: NodeJS.Timeout;
  restartTimer?: NodeJS.Timeout;
  /** Settles when the current start or stop finishes: one lifecycle operation at a time. */
  op: Promise<unknown>;
  /** What its signature vouches for, as last verified (absent: unsigned). */
  signed?: SignedContent;
  /** The operator's live limit changes (`logomesh limit`): kept for its later containers under this controller. */
  liveLimits?: LimitChange;
}

export function managed(loaded: LoadedManifest, signed: SignedContent | undefined): Managed {
  return { loaded, state: 'loaded', logs: new LogBuffer(), op: Promise.resolve(), restarts: 0, retries: 0, ...(signed ? { signed } : {}) };
}

/** Run `fn` after the plugin's current lifecycle operation, whatever its outcome. */
export function serialize<T>(m: Managed, fn: () => Promise<T>): Promise<T> {
  const run = m.op.then(fn, fn);
  m.op = run.catch(() => undefined);
  return run;
}

/** Is it running or about to (calls may be routed to it, its container exists)? */
export function isUp(m: Managed): boolean {
  return m.state === 'ready' || m.state === 'starting';
}
