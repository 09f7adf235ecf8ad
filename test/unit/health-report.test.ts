import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pluginSocketDir, resolveHome } from '../../src/controller/home.js';
import { forgetHealthReport, reportHealth } from '../../src/controller/health-report.js';
import { HEALTH_REPORT_NAME } from '../../src/sandbox/health-check.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(id: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-health-report-'));
  dirs.push(dir);
  const home = resolveHome({ LOGOMESH_HOME: dir });
  mkdirSync(pluginSocketDir(home, id), { recursive: true });
  return { home, file: path.join(pluginSocketDir(home, id), HEALTH_REPORT_NAME) };
}

const old = new Date(Date.now() - 3_600_000);

describe('the health report a plugin container checks', () => {
  it('is written whole, then only touched while it says the same (at most every 10 s), and replaced when it changes', () => {
    const { home, file } = setup('reported');
    const t0 = Date.now();
    reportHealth(home, 'reported', 'ok: ready,\nconnected', 0, t0);
    expect(readFileSync(file, 'utf8')).toBe('ok: ready, connected\n');
    const first = statSync(file);
    utimesSync(file, old, old);
    // Within 10 s of the last write: nothing done (the file keeps the old time set here).
    reportHealth(home, 'reported', 'ok: ready, connected', 0, t0 + 5_000);
    expect(Math.abs(statSync(file).mtimeMs - old.getTime())).toBeLessThan(2);
    reportHealth(home, 'reported', 'ok: ready, connected', 0, t0 + 10_000);
    const touched = statSync(file);
    // The same file (no new inode), made young again: the check's max age holds.
    expect(touched.ino).toBe(first.ino);
    expect(Math.abs(touched.mtimeMs - (t0 + 10_000))).toBeLessThan(2);
    reportHealth(home, 'reported', 'unhealthy: no answer', 0, t0 + 11_000);
    expect(readFileSync(file, 'utf8')).toBe('unhealthy: no answer\n');
    expect(statSync(file).ino).not.toBe(first.ino);
  });

  it('writes the file again when it is gone (at its next refresh, or at once for a new container), and never throws when the folder is', () => {
    const { home, file } = setup('gone');
    const t0 = Date.now();
    reportHealth(home, 'gone', 'ok', 0, t0);
    rmSync(file);
    reportHealth(home, 'gone', 'ok', 0, t0 + 10_000);
    expect(readFileSync(file, 'utf8')).toBe('ok\n');
    rmSync(file);
    forgetHealthReport(home, 'gone');
    reportHealth(home, 'gone', 'ok', 0, t0 + 10_001);
    expect(readFileSync(file, 'utf8')).toBe('ok\n');
    rmSync(path.dirname(file), { recursive: true });
    expect(() => reportHealth(home, 'gone', 'ok')).not.toThrow();
    // No half-made report left beside the folders.
    expect(readdirSync(home.socketsDir)).toEqual([]);
  });
});
