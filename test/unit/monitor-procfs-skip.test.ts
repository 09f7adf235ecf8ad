import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcfsCheck } from '../../src/monitor/procfs-check.js';
import { NO_RULES } from '../../src/monitor/rules.js';
import type { ResourceViolation, WatchedLimits } from '../../src/monitor/types.js';
import { WatchState } from '../../src/monitor/watch-state.js';

const LIMITS: WatchedLimits = { memoryBytes: 2 ** 28, cpuPercent: 50, processes: 64, fileHandles: 4, tmpBytes: 2 ** 24, networkConnections: 0 };

/**
 * The slow /proc reads of a watch (procfs-check.ts) are skipped while the cgroup's CPU time
 * holds still: a fixture /proc (a folder, counted by listing) whose process opens files
 * "without CPU" shows the skip; the CPU figure moving, or the limits changing live, reads again.
 */
describe("a watch's slow /proc reads", () => {
  let dir: string;
  let proc: string;
  let cpu: number | undefined;
  let seen: ResourceViolation[];
  let check: ProcfsCheck;
  const open = (n: number) => {
    for (let i = 0; i < n; i++) writeFileSync(path.join(proc, '7', 'fd', String(i)), '');
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-procfs-skip-'));
    proc = path.join(dir, 'proc');
    mkdirSync(path.join(proc, '7', 'fd'), { recursive: true });
    writeFileSync(path.join(dir, 'cgroup.procs'), '7\n');
    cpu = 1_000;
    seen = [];
    check = new ProcfsCheck({ version: 1, pids: dir }, new WatchState('p', (v) => seen.push(v)), proc, () => 1, () => cpu);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are skipped while the CPU time is unmoved, and read once it moves', () => {
    open(2);
    check.check(LIMITS, NO_RULES);
    expect(seen).toEqual([]);
    open(4);
    check.check(LIMITS, NO_RULES);
    expect(seen).toEqual([]);
    cpu = 1_001;
    check.check(LIMITS, NO_RULES);
    expect(seen.map((v) => [v.kind, v.value])).toEqual([['file-handles', 4]]);
  });

  it('are read under new limits at once (a live limit change)', () => {
    check.check(LIMITS, NO_RULES);
    open(2);
    check.check(LIMITS, NO_RULES);
    check.check({ ...LIMITS, fileHandles: 2 }, NO_RULES);
    expect(seen.map((v) => [v.kind, v.value])).toEqual([['file-handles', 2]]);
  });

  it('are read at least every eleventh poll whatever the CPU figure says', () => {
    check.check(LIMITS, NO_RULES);
    open(4);
    for (let i = 0; i < 10; i++) check.check(LIMITS, NO_RULES);
    expect(seen).toEqual([]);
    check.check(LIMITS, NO_RULES);
    expect(seen.map((v) => [v.kind, v.value])).toEqual([['file-handles', 4]]);
  });

  it('are never skipped without a CPU figure', () => {
    cpu = undefined;
    check.check(LIMITS, NO_RULES);
    open(4);
    check.check(LIMITS, NO_RULES);
    expect(seen.map((v) => v.kind)).toEqual(['file-handles']);
  });
});
