import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withEffectiveUid } from './support/effective-uid.js';
import { decodeUtf8, readRegularFile, type ReadFileOptions, type ReadResult } from '../../src/read-file.js';

/**
 * The safe reader against every kind of file a hostile author (or a mistaken operator) can
 * put where a manifest, policy or plugin.sig is expected. Each case must come back as a
 * refusal, quickly: a FIFO or a device that blocks, or a file that never ends, fails the
 * time bound instead of hanging the suite.
 */

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-read-')));
const inside = path.join(root, 'plugin');
const outside = path.join(root, 'outside');
const servers: net.Server[] = [];
const MAX = 1024;
const isRoot = process.getuid?.() === 0;

beforeAll(() => {
  mkdirSync(inside);
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), 'host secret\n');
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
/** A fresh path in the plugin folder. */
const fresh = (name = 'plugin.yaml'): string => {
  const dir = path.join(inside, `case-${n++}`);
  mkdirSync(dir);
  return path.join(dir, name);
};

/** Read with a time bound: a hang would fail here rather than stall the suite. */
function timedRead(file: string, options: Partial<ReadFileOptions> = {}): ReadResult {
  const started = performance.now();
  const result = readRegularFile(file, { maxBytes: MAX, within: inside, ...options });
  expect(performance.now() - started).toBeLessThan(5000);
  return result;
}

function refused(result: ReadResult): Extract<ReadResult, { ok: false }> {
  if (result.ok) throw new Error(`expected a refusal, read ${result.bytes.length} bytes of ${result.real}`);
  expect(result.expected).toMatch(/\S/);
  expect(result.found).toMatch(/\S/);
  return result;
}

describe('readRegularFile reads a regular file', () => {
  it('whole, once, with its identity and link count', () => {
    const file = fresh();
    writeFileSync(file, 'id: demo\n');
    const r = timedRead(file);
    expect(r).toMatchObject({ ok: true, real: file, nlink: 1 });
    expect(r.ok && r.bytes.toString()).toBe('id: demo\n');
  });

  it('through a symlink that stays inside the folder, reporting the real path', () => {
    const file = fresh('real.yaml');
    writeFileSync(file, 'x: 1\n');
    const link = path.join(path.dirname(file), 'plugin.yaml');
    symlinkSync('real.yaml', link);
    expect(timedRead(link)).toMatchObject({ ok: true, real: file });
  });

  it('up to exactly maxBytes, and refuses one byte more', () => {
    const file = fresh();
    writeFileSync(file, 'a'.repeat(MAX));
    expect(timedRead(file).ok).toBe(true);
    appendFileSync(file, 'a');
    expect(refused(timedRead(file))).toMatchObject({ failure: 'too-large', found: `${MAX + 1} bytes` });
  });

  it('counts hard links, so a caller can refuse a file with a second name', () => {
    const file = fresh();
    writeFileSync(file, 'x: 1\n');
    linkSync(file, path.join(path.dirname(file), 'other-name.yaml'));
    expect(timedRead(file)).toMatchObject({ ok: true, nlink: 2 });
  });
});

describe('readRegularFile refuses, without hanging, anything that is not a regular file inside the folder', () => {
  it('nothing there, or a dangling symlink', () => {
    expect(refused(timedRead(fresh()))).toMatchObject({ failure: 'missing', found: 'nothing' });
    const link = fresh();
    symlinkSync('gone.yaml', link);
    expect(refused(timedRead(link))).toMatchObject({ failure: 'missing', found: 'a dangling symlink (to gone.yaml)' });
  });

  it('a folder', () => {
    const dir = fresh();
    mkdirSync(dir);
    expect(refused(timedRead(dir))).toMatchObject({ failure: 'not-regular', found: 'a folder' });
  });

  it('a FIFO (opening it for reading would wait for a writer forever)', () => {
    const fifo = fresh();
    execFileSync('mkfifo', [fifo]);
    expect(refused(timedRead(fifo))).toMatchObject({ failure: 'not-regular', found: 'a FIFO (named pipe)' });
  });

  it('a Unix socket with a listener', async () => {
    const sock = fresh();
    const server = net.createServer().listen(sock);
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    expect(refused(timedRead(sock))).toMatchObject({ failure: 'not-regular', found: 'a Unix socket' });
  });

  it('symlinks to /dev/zero, /proc/self/mem, a tty and a file outside the folder: named, never opened', () => {
    const targets = ['/dev/zero', '/proc/self/mem', '/dev/tty', path.join(outside, 'secret.txt')].filter((t) => existsSync(t) || t === '/dev/tty');
    for (const target of targets) {
      const link = fresh();
      symlinkSync(target, link);
      const r = refused(timedRead(link));
      expect(r.failure).toBe('outside');
      expect(r.found).toContain('outside');
      expect(r.found).not.toContain('host secret');
    }
  });

  it('the same special files with no folder to stay in: refused by kind, or by what reading them does', () => {
    // Without `within` (the policy file's case) the target is examined: devices are
    // refused before any open, /proc/self/mem is a "regular" file whose read fails.
    const zero = fresh();
    symlinkSync('/dev/zero', zero);
    expect(refused(timedRead(zero, { within: undefined }))).toMatchObject({ failure: 'not-regular', found: 'a character device (/dev/zero)' });
    if (existsSync('/dev/tty')) {
      const tty = fresh();
      symlinkSync('/dev/tty', tty);
      expect(refused(timedRead(tty, { within: undefined }))).toMatchObject({ failure: 'not-regular', found: 'a character device (/dev/tty)' });
    }
    const mem = fresh();
    symlinkSync('/proc/self/mem', mem);
    expect(refused(timedRead(mem, { within: undefined }))).toMatchObject({ failure: 'unreadable', found: 'a file that cannot be read (EIO)' });
  });

  it.runIf(isRoot)('device nodes made inside the folder (root only: mknod)', () => {
    for (const [major, minor] of [
      ['1', '5'], // zero
      ['5', '0'], // tty
    ] as const) {
      const node = fresh();
      execFileSync('mknod', [node, 'c', major, minor]);
      expect(refused(timedRead(node))).toMatchObject({ failure: 'not-regular', found: 'a character device' });
    }
  });

  it('a symlink where none is allowed (plugin.sig), even one that stays inside', () => {
    const file = fresh('real.sig');
    writeFileSync(file, '{}');
    const link = path.join(path.dirname(file), 'plugin.sig');
    symlinkSync('real.sig', link);
    expect(refused(timedRead(link, { noSymlink: true }))).toMatchObject({ failure: 'symlink', found: 'a symlink (to real.sig)' });
  });

  it('a file whose read permission is refused (as root: with the effective uid of nobody)', () => {
    const file = fresh();
    writeFileSync(file, 'x: 1\n');
    chmodSync(file, 0o000);
    if (!isRoot) {
      expect(refused(timedRead(file))).toMatchObject({ failure: 'unreadable', found: 'a file that cannot be opened (EACCES)' });
      return;
    }
    // Root reads a mode-000 file, so drop the effective uid for the read (the real uid
    // stays 0, so it can be taken back); the folders on the way must be searchable.
    for (let d = path.dirname(file); d.startsWith(root); d = path.dirname(d)) chmodSync(d, 0o755);
    const r = withEffectiveUid(65534, () => timedRead(file));
    expect(refused(r)).toMatchObject({ failure: 'unreadable', found: 'a file that cannot be opened (EACCES)' });
  });

  it('a file swapped for a FIFO between the check and the open', () => {
    const file = fresh();
    writeFileSync(file, 'x: 1\n');
    const r = timedRead(file, {
      afterCheck: (real) => {
        unlinkSync(real);
        execFileSync('mkfifo', [real]);
      },
    });
    expect(refused(r)).toMatchObject({ failure: 'changed' });
  });

  it('a file swapped for a symlink out of the folder between the check and the open', () => {
    const file = fresh();
    writeFileSync(file, 'x: 1\n');
    const r = timedRead(file, {
      afterCheck: (real) => {
        unlinkSync(real);
        symlinkSync(path.join(outside, 'secret.txt'), real);
      },
    });
    // O_NOFOLLOW: the open itself refuses the symlink (ELOOP).
    expect(refused(r)).toMatchObject({ failure: 'unreadable', found: 'a file that cannot be opened (ELOOP)' });
  });

  it('a file that grows past the limit after its size was checked', () => {
    const file = fresh();
    writeFileSync(file, 'x: 1\n');
    const r = timedRead(file, { afterCheck: (real) => appendFileSync(real, 'y'.repeat(4 * MAX)) });
    expect(refused(r)).toMatchObject({ failure: 'too-large', found: `more than ${MAX} bytes (stat said ${5 + 4 * MAX})` });
  });
});

describe('decodeUtf8', () => {
  it('drops a UTF-8 byte-order mark and keeps everything else', () => {
    expect(decodeUtf8(Buffer.from('\ufeffid: é\n'))).toEqual({ ok: true, text: 'id: é\n' });
  });

  it('refuses invalid UTF-8 with the offset of the first bad byte, rather than replacing it', () => {
    expect(decodeUtf8(Buffer.from([0x61, 0x3a, 0x20, 0xff, 0x0a]))).toEqual({ ok: false, found: 'bytes that are not UTF-8 (first at byte 3)' });
    expect(decodeUtf8(Buffer.from([0x61, 0xc3, 0xa9, 0xe2, 0x82]))).toEqual({ ok: false, found: 'bytes that are not UTF-8 (first at byte 3)' });
  });

  it('refuses UTF-16 by its byte-order mark', () => {
    expect(decodeUtf8(Buffer.from('\ufeffid: x', 'utf16le'))).toEqual({ ok: false, found: 'UTF-16 text (a UTF-16 byte-order mark)' });
  });
});
