import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { holdBeneath, holdRealPath, PathChangedError } from '../../src/sandbox/host-paths.js';

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-held-')));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function changed(fn: () => unknown): PathChangedError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PathChangedError);
    return err as PathChangedError;
  }
  throw new Error('not refused');
}

describe('host paths held by descriptor', () => {
  const plugin = path.join(root, 'plugin');
  mkdirSync(path.join(plugin, 'data', 'deep'), { recursive: true });
  writeFileSync(path.join(plugin, 'data', 'deep', 'rows.csv'), 'a,b\n');
  mkdirSync(path.join(root, 'secret'));
  symlinkSync(path.join(root, 'secret'), path.join(plugin, 'link'));
  symlinkSync(path.join(root, 'secret'), path.join(plugin, 'data', 'inner-link'));
  execFileSync('mkfifo', [path.join(plugin, 'fifo')]);

  it('holds a real path and what is below it, by identity', () => {
    const dir = holdRealPath(plugin, 'directory');
    const deep = holdBeneath(dir, 'data/deep/rows.csv', 'file');
    const st = statSync(path.join(plugin, 'data', 'deep', 'rows.csv'));
    expect({ dev: deep.dev, ino: deep.ino, isDirectory: deep.isDirectory }).toEqual({ dev: st.dev, ino: st.ino, isDirectory: false });
    expect(holdBeneath(dir, '.').ino).toBe(dir.ino);
    deep.close();
    deep.close(); // idempotent
    dir.close();
  });

  it('refuses a symlink anywhere on the way, naming where and what it points to', () => {
    const e = changed(() => holdRealPath(path.join(plugin, 'link', 'x')));
    expect(e.at).toBe(path.join(plugin, 'link'));
    expect(e.found).toBe(`a symlink (to ${path.join(root, 'secret')})`);
    const dir = holdRealPath(plugin);
    expect(changed(() => holdBeneath(dir, 'data/inner-link')).found).toMatch(/^a symlink/);
    expect(changed(() => holdBeneath(dir, 'link')).expected).toBe('a folder or regular file');
    dir.close();
  });

  it("refuses '..', a file where a folder is expected, a special file, and nothing", () => {
    const dir = holdRealPath(plugin);
    expect(changed(() => holdBeneath(dir, '../secret')).found).toBe('".."');
    expect(changed(() => holdBeneath(dir, 'data/deep/rows.csv/x')).expected).toBe('a folder, not a symlink');
    expect(changed(() => holdBeneath(dir, 'data', 'file')).found).toBe('a folder');
    expect(changed(() => holdBeneath(dir, 'fifo')).found).toBe('a special file'); // opened with O_PATH: never blocks
    expect(changed(() => holdBeneath(dir, 'missing')).found).toBe('nothing it can open (ENOENT)');
    expect(changed(() => holdRealPath('relative/path')).expected).toBe('an absolute path');
    dir.close();
  });
});
