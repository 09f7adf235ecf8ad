import type { Restart } from '../manifest/types.js';
import type { Workload } from './backend.js';
import { consecutiveFailures, decideRestart, type FailureHistory, type RestartDecision } from './restart-policy.js';

/**
 * The switch to a warm standby made as soon as the kernel says the active container's
 * processes are gone (exit-watches.ts), before the engine reports the exit and so before
 * anyone knows why it ended. Pure: when such a switch may be made, and whether the verdict
 * that follows (the engine's exit code, the OOM record, the seccomp kill record, the
 * monitor's kill) keeps it. Unit-tested in test/unit/early-switch.test.ts.
 */

/** A switch made early, waiting for its verdict (one per plugin at a time). */
export interface EarlySwitch {
  /** The container whose processes were gone: kept (not removed) until the engine reports its exit. */
  readonly from: Workload;
  /** The standby switched in. */
  readonly to: Workload;
  /** Consecutive failures before this one (0: only a first failure switches early). */
  readonly retries: number;
  /** The plugin's restart count before the switch, for a verdict that undoes it. */
  readonly restarts: number;
  /** When `from` started (ms since the epoch): its seccomp kill record is looked up from then. */
  readonly startedAt: number;
  /** Its verdict is being found: a second source of it (the seccomp record while the exit is classified) is left to that one. */
  settling: boolean;
  /** Settles once the verdict is applied (the resource monitor moves to `to` then). */
  readonly settled: Promise<void>;
  readonly settle: () => void;
}

/**
 * May a plugin whose processes are all gone switch to its standby before the cause is known?
 * Only where a crash's verdict would switch too: a first failure (not a second in a row,
 * which waits its backoff), under a policy that restarts a crash (not `never`), with retries
 * allowed, while the controller is not closing. A verdict that would not have switched (a
 * seccomp kill, a clean exit under on-failure) is rarer, and undoes it (`keepsSwitch`).
 * Returns the consecutive failures before this one, or undefined: wait for the engine.
 */
export function earlySwitchAllowed(restart: Restart, history: FailureHistory, now: number, closing: boolean): number | undefined {
  const retries = consecutiveFailures(restart, history, now);
  if (retries !== 0) return undefined;
  const crash = decideRestart(restart, retries, { cleanExit: false, quarantine: false, closing });
  return crash.action === 'restart' ? retries : undefined;
}

/** Does a verdict keep the standby switched in? The supervisor's own rule: a restart after a first failure. */
export function keepsSwitch(decision: RestartDecision, retries: number): decision is Extract<RestartDecision, { action: 'restart' }> {
  return decision.action === 'restart' && retries === 0;
}

/** A pending early switch, with the promise the resource monitor's move waits on. */
export function earlySwitch(from: Workload, to: Workload, before: { retries: number; restarts: number; startedAt: number }): EarlySwitch {
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  return { from, to, ...before, settling: false, settled, settle };
}
