import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readAudit } from '../../src/audit/audit-log.js';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { tmpfsMountsUnder } from '../../src/memory/tmpfs.js';
import { shmPlugin } from './shm-support.js';
import { docker, instance, tempDir } from './support.js';

type Handle = { id: string; owner: string; size: number; readOnly: boolean; path: string };

/**
 * The shared-memory pool in real containers: every refusal below is the kernel's (an errno
 * inside the plugin's container) or the hub's (a code, audited), never the SDK's politeness:
 * the attacks go past the SDK, straight at the files.
 */
describe('shared memory: the pool, kernel-enforced access, handles in messages', () => {
  let ctl: Controller;
  let home: Home;
  const alloc = (id: string, size: number, text = '') => ctl.call(id, 'alloc', { size, text }) as Promise<Handle>;
  const op = (id: string, segment: string, what: string, extra: Record<string, unknown> = {}) => ctl.call(id, 'op', { segment, what, ...extra }) as Promise<{ ok: boolean; code?: string; handle?: Handle }>;
  const attack = (id: string, handle: Handle, how: string) => ctl.call(id, 'attack', { handle, how }) as Promise<string>;
  const read = (id: string, handle: Handle) => ctl.call(id, 'read', { seg: handle }) as Promise<string>;
  const trail = () => readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.result}${e.code ? ` ${e.code}` : ''}`);

  beforeAll(async () => {
    const root = tempDir('lm-shm-');
    shmPlugin(root, 'shm-a', ['shm-b', 'shm-c', 'shm-d'], { memoryMB: 64 });
    shmPlugin(root, 'shm-b', ['shm-a', 'shm-c']);
    shmPlugin(root, 'shm-c', ['shm-a', 'shm-b']);
    shmPlugin(root, 'shm-d', [], { sharedMemory: false });
    home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-shm` });
    ctl = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000, sharedMemory: { poolBytes: 256 * 1024 * 1024 } });
    ctl.loadDirectory(root);
    await ctl.startAll();
  }, 300_000);
  afterAll(async () => {
    await ctl?.close();
    if (home) expect(tmpfsMountsUnder(path.join(home.dir, 'pool'))).toEqual([]);
  });

  it('only the owner opens a new segment; a grant given later works at once, read-only', async () => {
    const h = await alloc('shm-a', 4096, 'hello from a');
    expect(h).toMatchObject({ owner: 'shm-a', size: 4096, readOnly: false, path: `shm-a/${h.id}` });
    expect(await read('shm-a', h)).toBe('hello from a');
    // Guessing the path is enough to find the file, not to open it.
    expect(await attack('shm-b', h, 'open-read')).toBe('EACCES');
    expect(await read('shm-b', h)).toBe('LM_PERMISSION_DENIED');
    expect(await op('shm-a', h.id, 'share', { plugins: ['shm-b'] })).toMatchObject({ ok: true });
    expect(await read('shm-b', h)).toBe('hello from a');
    expect(await attack('shm-c', h, 'open-read')).toBe('EACCES');
    // A reader cannot write, truncate, grow, map writable, re-open for writing, chmod, unlink or rename.
    for (const how of ['open-write', 'open-rdwr', 'truncate', 'grow', 'mmap-write', 'reopen-proc']) expect(await attack('shm-b', h, how), how).toBe('EACCES');
    expect(await attack('shm-b', h, 'chmod')).toBe('EPERM');
    expect(await attack('shm-b', h, 'unlink')).toBe('EACCES');
    expect(await attack('shm-b', h, 'rename')).toBe('EACCES');
    expect(await read('shm-a', h)).toBe('hello from a');
    // Not even the owner changes the file's rights: root owns it.
    expect(await attack('shm-a', h, 'chmod')).toBe('EPERM');
    // Only the owner shares.
    expect(await op('shm-b', h.id, 'share', { plugins: ['shm-c'] })).toMatchObject({ ok: false, code: 'LM_SEGMENT' });
  });

  it('no plugin creates, links or lists anything in the pool', async () => {
    const h = await alloc('shm-a', 4096);
    for (const id of ['shm-a', 'shm-b']) {
      for (const how of ['create', 'create-root', 'symlink', 'mkdir', 'list-pool', 'list-owner']) expect(await attack(id, h, how), `${id} ${how}`).toBe('EACCES');
    }
    // A hard link needs the same filesystem, and /tmp is another: the kernel says so first.
    expect(await attack('shm-a', h, 'hardlink')).toBe('EXDEV');
  });

  it('resize keeps the data; read-only binds the owner too, for every new open', async () => {
    const h = await alloc('shm-a', 100, 'kept across resize');
    const grown = await op('shm-a', h.id, 'resize', { size: 3 * 1024 * 1024 });
    expect(grown.handle?.size).toBe(3 * 1024 * 1024);
    expect(await read('shm-a', grown.handle!)).toBe('kept across resize');
    expect(await op('shm-a', h.id, 'readonly')).toMatchObject({ ok: true, handle: { readOnly: true } });
    expect(await attack('shm-a', grown.handle!, 'open-rdwr')).toBe('EACCES');
    expect(await read('shm-a', grown.handle!)).toBe('kept across resize');
    expect(await op('shm-a', h.id, 'resize', { size: 10 })).toMatchObject({ ok: false, code: 'LM_SEGMENT' });
  });

  it('quotas: the controller refuses past the plugin quota, the kernel refuses growth past what was allocated', async () => {
    // shm-a's quota is its memory limit, 64 MiB.
    await expect(alloc('shm-a', 65 * 1024 * 1024)).rejects.toMatchObject({ code: 'LM_MEMORY_QUOTA', message: expect.stringContaining('its quota is 67108864 bytes') });
    const h = await alloc('shm-a', 4096);
    // pwrite 8 MiB past its end: the owner's tmpfs holds exactly what it allocated.
    expect(await attack('shm-a', h, 'grow')).toBe('ENOSPC');
    await vi.waitFor(() => expect(trail()).toContain('shm-a segment allocate denied LM_MEMORY_QUOTA'), { timeout: 5_000 });
  });

  it('handles in messages: checked before delivery, granted by the owner on the way, forged ones refused and audited', async () => {
    const h = await alloc('shm-a', 4096, 'sent in a call');
    // Without a grant, a receiver without access is refused before it sees the call.
    expect(await ctl.call('shm-a', 'send', { target: 'shm-c', segment: h.id })).toBe('LM_PERMISSION_DENIED');
    expect(await ctl.call('shm-a', 'send', { target: 'shm-c', segment: h.id, grant: 'read' })).toBe('sent in a call');
    expect(ctl.memory.list().find((s) => s.id === h.id)?.holders).toEqual([{ plugin: 'shm-c', access: 'read' }]);
    // shm-b holds nothing of this segment: sending its handle is refused by the hub.
    expect(await ctl.call('shm-b', 'send', { target: 'shm-c', segment: '', forged: h })).toBe('LM_PERMISSION_DENIED');
    // shm-c holds it (read) but does not own it: it cannot grant it on.
    expect(await ctl.call('shm-c', 'send', { target: 'shm-b', segment: '', forged: h, grant: 'read' }).catch((e: { code: string }) => e.code)).toBe('LM_PERMISSION_DENIED');
    // A receiver without the pool mounted cannot be sent one.
    expect(await ctl.call('shm-a', 'send', { target: 'shm-d', segment: h.id, grant: 'read' })).toBe('LM_PERMISSION_DENIED');
    ctl.hub.flushAudit();
    // The trail is written a line at a time behind the decisions.
    await vi.waitFor(() => expect(trail()).toEqual(expect.arrayContaining(['shm-a segment grant allowed', 'shm-b segment pass denied LM_PERMISSION_DENIED', 'shm-c segment pass denied LM_PERMISSION_DENIED'])), { timeout: 5_000 });
  });

  it('structured data round-trips through a segment in json, msgpack and protobuf', async () => {
    const value = { name: 'ünïcødé ✓', n: 42, f: 1.5, list: [1, 'two', null, { deep: [null] }], empty: {}, yes: true };
    for (const fmt of ['json', 'msgpack', 'protobuf']) {
      expect(await ctl.call('shm-a', 'structured', { fmt, value, target: 'shm-b' }), fmt).toEqual(value);
    }
  });

  it('the cache: a segment published under a key is read by others until its time is up', async () => {
    const h = await alloc('shm-a', 4096, 'cached value');
    // A time to live far longer than the reads take (no race with a loaded machine) ...
    expect(await op('shm-a', h.id, 'publish', { key: 'report.latest', ttl: 600_000 })).toMatchObject({ ok: true, handle: { readOnly: true } });
    expect(await ctl.call('shm-c', 'lookup', { key: 'report.latest' })).toBe('cached value');
    expect(await ctl.call('shm-b', 'lookup', { key: 'report.latest' })).toBe('cached value');
    // ... then published again for 1 ms: the new time replaces the old one, and the key goes.
    expect(await op('shm-a', h.id, 'publish', { key: 'report.latest', ttl: 1 })).toMatchObject({ ok: true });
    await vi.waitFor(async () => expect(await ctl.call('shm-b', 'lookup', { key: 'report.latest' })).toBe('LM_SEGMENT'), { timeout: 10_000, interval: 100 });
    // A time to live the pool cannot keep is refused by the hub, naming the field.
    expect(await op('shm-a', h.id, 'publish', { key: 'report.latest', ttl: 0 })).toMatchObject({ ok: false, message: expect.stringContaining("'ttlMs'") });
  });

  it("a call that breaks its method's schema gets LM_SCHEMA naming path, expected and found; the target never sees it", async () => {
    const before = await ctl.call('shm-a', 'count', {});
    await expect(ctl.call('shm-a', 'read', { seg: {}, length: 'ten' })).rejects.toMatchObject({ code: 'LM_SCHEMA', message: 'shm-a.read params: /length must be a value of type integer (found "ten" (string))' });
    await expect(ctl.call('shm-a', 'read', { handle: {} })).rejects.toMatchObject({ code: 'LM_SCHEMA', message: expect.stringMatching(/^shm-a\.read params: \/seg must be the required field 'seg'/) });
    expect(await ctl.call('shm-a', 'count', {})).toBe(before);
    expect(ctl.methodSchemas('shm-a', 'read')).toMatchObject({ params: { required: ['seg'] }, result: { type: 'string' } });
  });

  it('a plugin without sharedMemory has no pool and may not ask for segments', async () => {
    await expect(ctl.call('shm-d', 'alloc', { size: 10 })).rejects.toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('does not set coordination.sharedMemory: true') });
  });

  it('an owner that crashes: what nobody holds is freed, what a running plugin holds lives on', async () => {
    const alone = await alloc('shm-a', 4096, 'alone');
    const shared = await alloc('shm-a', 4096, 'shared');
    await op('shm-a', shared.id, 'share', { plugins: ['shm-b'] });
    await ctl.call('shm-a', 'crash', {}).catch(() => undefined);
    await vi.waitFor(() => expect(ctl.memory.list().map((s) => s.id)).not.toContain(alone.id), { timeout: 15_000 });
    expect(existsSync(path.join(home.dir, 'pool', alone.path))).toBe(false);
    expect(ctl.memory.list().map((s) => s.id)).toContain(shared.id);
    expect(await read('shm-b', shared)).toBe('shared');
    // Earlier tests gave shm-c some of shm-a's segments: they live while shm-c runs.
    const running = new Set(['shm-b', 'shm-c']);
    expect(ctl.memory.list().filter((s) => s.owner === 'shm-a').every((s) => s.holders.some((x) => running.has(x.plugin)))).toBe(true);
    await ctl.stop('shm-b');
    await ctl.stop('shm-c');
    expect(ctl.memory.list().filter((s) => s.owner === 'shm-a')).toEqual([]);
    expect(tmpfsMountsUnder(path.join(home.dir, 'pool', 'shm-a'))).toEqual([]);
  });
});
