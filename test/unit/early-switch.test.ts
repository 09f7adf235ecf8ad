import { describe, expect, it } from 'vitest';
import type { Restart } from '../../src/manifest/types.js';
import { earlySwitch, earlySwitchAllowed, keepsSwitch } from '../../src/controller/early-switch.js';
import { consecutiveFailures, decideRestart } from '../../src/controller/restart-policy.js';
import type { Workload } from '../../src/controller/backend.js';

/** The switch at the end of a container's processes, before its cause is known: pure decisions only. */
const restart = (r: Partial<Restart> = {}): Restart => ({ policy: 'on-failure', maxRetries: 3, backoffMs: 500, maxBackoffMs: 4_000, standby: true, ...r });
const NOW = 1_000_000;
const crash = { cleanExit: false, quarantine: false, closing: false };

describe('early switch to a standby', () => {
  it('is made for a first failure under a policy that restarts a crash', () => {
    expect(earlySwitchAllowed(restart(), { retries: 0 }, NOW, false)).toBe(0);
    expect(earlySwitchAllowed(restart({ policy: 'always' }), { retries: 0 }, NOW, false)).toBe(0);
    // Failed before, but ready long enough since: a new count, a first failure again.
    expect(earlySwitchAllowed(restart(), { retries: 2, readySince: NOW - 60_000 }, NOW, false)).toBe(0);
  });

  it('is not made where no verdict would switch, or one would wait its backoff', () => {
    expect(earlySwitchAllowed(restart({ policy: 'never' }), { retries: 0 }, NOW, false)).toBeUndefined();
    expect(earlySwitchAllowed(restart(), { retries: 0 }, NOW, true)).toBeUndefined();
    expect(earlySwitchAllowed(restart({ maxRetries: 0 }), { retries: 0 }, NOW, false)).toBeUndefined();
    // A second failure in a row (ready only a moment since the first): the backoff, as without a standby.
    expect(earlySwitchAllowed(restart(), { retries: 1, readySince: NOW - 50 }, NOW, false)).toBeUndefined();
  });

  it('is kept by the verdicts that switch, undone by those that do not', () => {
    const r = restart();
    expect(keepsSwitch(decideRestart(r, 0, crash), 0)).toBe(true);
    expect(keepsSwitch(decideRestart(restart({ policy: 'always' }), 0, { ...crash, cleanExit: true }), 0)).toBe(true);
    // A seccomp kill: quarantined. A clean exit under on-failure: exited. Closing: nothing restarts.
    expect(keepsSwitch(decideRestart(r, 0, { ...crash, quarantine: true }), 0)).toBe(false);
    expect(keepsSwitch(decideRestart(r, 0, { ...crash, cleanExit: true }), 0)).toBe(false);
    expect(keepsSwitch(decideRestart(r, 0, { ...crash, closing: true }), 0)).toBe(false);
    expect(keepsSwitch(decideRestart(r, 1, crash), 1)).toBe(false);
  });

  it('agrees with the supervisor: every early switch a crash verdict keeps, and only those', () => {
    for (const policy of ['always', 'on-failure', 'never'] as const) {
      for (const maxRetries of [0, 1, 3]) {
        for (const retries of [0, 1, 2]) {
          for (const readySince of [undefined, NOW - 50, NOW - 60_000]) {
            const r = restart({ policy, maxRetries });
            const history = { retries, ...(readySince !== undefined ? { readySince } : {}) };
            const before = earlySwitchAllowed(r, history, NOW, false);
            const n = consecutiveFailures(r, history, NOW);
            expect(before !== undefined, JSON.stringify({ policy, maxRetries, retries, readySince })).toBe(keepsSwitch(decideRestart(r, n, crash), n));
          }
        }
      }
    }
  });

  it('keeps what the undo needs, and settles once', async () => {
    const from = { id: 'a' } as Workload;
    const to = { id: 'b' } as Workload;
    const e = earlySwitch(from, to, { retries: 0, restarts: 4, startedAt: 123 });
    expect(e).toMatchObject({ from, to, retries: 0, restarts: 4, startedAt: 123 });
    e.settle();
    e.settle();
    await expect(e.settled).resolves.toBeUndefined();
  });
});
