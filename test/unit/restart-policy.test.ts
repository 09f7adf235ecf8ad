import { describe, expect, it } from 'vitest';
import type { Restart } from '../../src/manifest/types.js';
import { consecutiveFailures, decideRestart } from '../../src/controller/restart-policy.js';

/** The restart policy alone: no controller, no timers, no engine. */
const restart = (r: Partial<Restart> = {}): Restart => ({ policy: 'on-failure', maxRetries: 3, backoffMs: 500, maxBackoffMs: 4_000, standby: false, ...r });
const crash = { cleanExit: false, quarantine: false, closing: false };

describe('restart policy', () => {
  it('backs off exponentially, capped at maxBackoffMs, and counts the failure', () => {
    expect(decideRestart(restart(), 0, crash)).toEqual({ action: 'restart', delayMs: 500, retries: 1 });
    expect(decideRestart(restart(), 1, crash)).toEqual({ action: 'restart', delayMs: 1_000, retries: 2 });
    expect(decideRestart(restart({ maxRetries: 10 }), 4, crash)).toEqual({ action: 'restart', delayMs: 4_000, retries: 5 });
    expect(decideRestart(restart({ maxRetries: 100 }), 60, crash)).toEqual({ action: 'restart', delayMs: 4_000, retries: 61 });
  });

  it('gives up after maxRetries consecutive failures, counting this one', () => {
    expect(decideRestart(restart(), 3, crash)).toEqual({ action: 'give-up', failures: 4 });
    expect(decideRestart(restart({ maxRetries: 0 }), 0, crash)).toEqual({ action: 'give-up', failures: 1 });
  });

  it('restarts on a clean exit only under always; never restarts under never', () => {
    const clean = { ...crash, cleanExit: true };
    expect(decideRestart(restart({ policy: 'on-failure' }), 0, clean)).toEqual({ action: 'exit' });
    expect(decideRestart(restart({ policy: 'always' }), 0, clean)).toMatchObject({ action: 'restart' });
    expect(decideRestart(restart({ policy: 'never' }), 0, crash)).toEqual({ action: 'exit' });
  });

  it('never restarts a quarantined plugin, nor anything while the controller closes', () => {
    expect(decideRestart(restart({ policy: 'always' }), 0, { ...crash, quarantine: true })).toEqual({ action: 'quarantine' });
    expect(decideRestart(restart({ policy: 'always' }), 0, { ...crash, closing: true })).toEqual({ action: 'exit' });
  });

  it('a plugin that stayed ready longer than the longest backoff (and 10 s) starts a new count', () => {
    const now = 1_000_000;
    expect(consecutiveFailures(restart(), { retries: 2, readySince: now - 10_001 }, now)).toBe(0);
    expect(consecutiveFailures(restart(), { retries: 2, readySince: now - 9_999 }, now)).toBe(2);
    expect(consecutiveFailures(restart({ maxBackoffMs: 60_000 }), { retries: 2, readySince: now - 30_000 }, now)).toBe(2);
    expect(consecutiveFailures(restart({ maxBackoffMs: 60_000 }), { retries: 2, readySince: now - 60_001 }, now)).toBe(0);
    expect(consecutiveFailures(restart(), { retries: 2 }, now)).toBe(2);
  });
});
