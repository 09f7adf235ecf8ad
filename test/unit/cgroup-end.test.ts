import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CgroupEnd, populated } from '../../src/monitor/cgroup-end.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** cgroup.events read and watched; a regular file stands for it (inotify reports its writes the same way). */
const dirs: string[] = [];
function cgroup(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lm-cgroup-end-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'cgroup.events'), text);
  return dir;
}
const until = async (fn: () => boolean) => {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10));
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the end of a cgroup', () => {
  it('reads populated from cgroup.events', () => {
    expect(populated('populated 1\nfrozen 0\n')).toBe(true);
    expect(populated('populated 0\nfrozen 0\n')).toBe(false);
    expect(populated('frozen 0\n')).toBeUndefined();
    expect(populated('populated 01\n')).toBeUndefined();
    expect(populated('')).toBeUndefined();
  });

  it('fires once when the last process leaves, and not before', async () => {
    const dir = cgroup('populated 1\nfrozen 0\n');
    let fired = 0;
    const end = CgroupEnd.watch(dir, () => fired++);
    writeFileSync(path.join(dir, 'cgroup.events'), 'populated 1\nfrozen 1\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(fired).toBe(0);
    writeFileSync(path.join(dir, 'cgroup.events'), 'populated 0\nfrozen 0\n');
    await until(() => fired > 0);
    expect(fired).toBe(1);
    expect(end.closed).toBe(true);
    writeFileSync(path.join(dir, 'cgroup.events'), 'populated 0\nfrozen 1\n');
    expect(end.check()).toBe(false);
    expect(fired).toBe(1);
  });

  it('fires at once for a cgroup already empty, and for one removed', async () => {
    let fired = 0;
    CgroupEnd.watch(cgroup('populated 0\n'), () => fired++);
    expect(fired).toBe(1);
    const dir = cgroup('populated 1\n');
    const end = CgroupEnd.watch(dir, () => fired++);
    rmSync(dir, { recursive: true });
    await until(() => fired > 1);
    expect(fired).toBe(2);
    expect(end.closed).toBe(true);
  });

  it('a prompt reads the file now; closed, it never fires', () => {
    const dir = cgroup('populated 1\n');
    let fired = 0;
    const end = CgroupEnd.watch(dir, () => fired++);
    expect(end.check()).toBe(false);
    end.close();
    writeFileSync(path.join(dir, 'cgroup.events'), 'populated 0\n');
    expect(end.check()).toBe(false);
    expect(fired).toBe(0);
  });

  it('throws for a cgroup that does not exist', () => {
    expect(() => CgroupEnd.watch('/nonexistent/cgroup', () => undefined)).toThrow();
  });
});
