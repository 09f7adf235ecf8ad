import type { LoadedManifest } from '../manifest/types.js';
import type { LimitChange } from '../monitor/index.js';
import type { SignedContent } from '../signing/signature.js';
import type { DebugEndpoint } from './debug/debug-mode.js';
import type { Fingerprint } from './deploy/fingerprint.js';
import type { Workload } from './backend.js';
import { LogBuffer } from './log-buffer.js';
import type { StartupBoost } from './startup-boost.js';
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
  restartTimer?: NodeJS.Timeout;
  /** Settles when the current start or stop finishes: one lifecycle operation at a time. */
  op: Promise<unknown>;
  /** What its signature vouches for, as last verified (absent: unsigned). */
  signed?: SignedContent;
  /**
   * Which of the plugin's two socket folders and egress attachments its container uses
   * (home.ts pluginSocketDir): a replacement takes the other one while the old container
   * finishes its calls.
   */
  generation: 0 | 1;
  /** Waits (bounded) for the container's output stream to drain, so its last lines are kept. */
  drainOutput?: (timeoutMs?: number) => Promise<void>;
  /** Where its debugger is reached from the host, in debug mode. */
  debug?: DebugEndpoint;
  /** What was deployed: the manifest, the folder's files, its signature, the policy (deploy/fingerprint.ts). */
  deployed?: Fingerprint;
  /** The operator's live limit changes (`logomesh limit`): kept for its later containers under this controller. */
  liveLimits?: LimitChange;
  /** Its current container's start-up CPU boost (startup-boost.ts), if it was started with one. */
  boost?: StartupBoost;
}

export function managed(loaded: LoadedManifest, signed: SignedContent | undefined, logs = new LogBuffer()): Managed {
  return { loaded, state: 'loaded', logs, op: Promise.resolve(), restarts: 0, retries: 0, generation: 0, ...(signed ? { signed } : {}) };
}

/** The key of a plugin's egress attachment (its network and proxy) for the generation it runs. */
export function egressKey(m: Managed): string {
  return m.generation === 0 ? m.loaded.manifest.id : `${m.loaded.manifest.id}.${m.generation}`;
}

/** The plugin id of an egress key. */
export function pluginOfEgressKey(key: string): string {
  return key.split('.')[0]!;
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
