import type { Restart } from '../manifest/types.js';

/**
 * What happens after a ready plugin fails, as a pure function of its manifest's `restart`
 * and its history: no timers, no engine, so every case is unit-tested alone
 * (test/unit/restart-policy.test.ts). The supervisor applies the answer.
 */

/** A plugin's failure history, as the supervisor keeps it. */
export interface FailureHistory {
  /** Consecutive failures before this one. */
  readonly retries: number;
  /** When it last became ready (absent: not since its last failure). */
  readonly readySince?: number;
}

/** The failure itself. */
export interface Failure {
  /** It exited with code 0 on its own (not killed for memory). */
  readonly cleanExit: boolean;
  /** It attempted something forbidden (a system call seccomp killed): never restarted, since restarting would let it try again. */
  readonly quarantine: boolean;
  /** The controller is closing: nothing restarts. */
  readonly closing: boolean;
}

export type RestartDecision =
  /** Stays failed: quarantined. */
  | { readonly action: 'quarantine' }
  /** Not restarted: the policy does not ask for it (or the controller is closing). */
  | { readonly action: 'exit' }
  /** Failed `failures` times in a row: restart.maxRetries reached, it stays failed (LM_RESTART_LIMIT). */
  | { readonly action: 'give-up'; readonly failures: number }
  /** Restarted after `delayMs`; `retries` consecutive failures counted from now on. */
  | { readonly action: 'restart'; readonly delayMs: number; readonly retries: number };

/**
 * Consecutive failures so far. A plugin that stayed ready longer than the longest backoff
 * (and at least 10 s) since its last failure starts a new count: it was not crash-looping.
 */
export function consecutiveFailures(restart: Restart, history: FailureHistory, now: number): number {
  if (history.readySince !== undefined && now - history.readySince > Math.max(restart.maxBackoffMs, 10_000)) return 0;
  return history.retries;
}

/**
 * Restart or not, and when: `always`, or `on-failure` unless the exit was clean; after an
 * exponential backoff (backoffMs doubling with each consecutive failure, at most
 * maxBackoffMs), up to maxRetries consecutive failures. `retries` is what
 * consecutiveFailures gave.
 */
export function decideRestart(restart: Restart, retries: number, failure: Failure): RestartDecision {
  if (failure.quarantine) return { action: 'quarantine' };
  const wanted = restart.policy === 'always' || (restart.policy === 'on-failure' && !failure.cleanExit);
  if (!wanted || failure.closing) return { action: 'exit' };
  if (retries >= restart.maxRetries) return { action: 'give-up', failures: retries + 1 };
  return { action: 'restart', delayMs: Math.min(restart.backoffMs * 2 ** retries, restart.maxBackoffMs), retries: retries + 1 };
}
