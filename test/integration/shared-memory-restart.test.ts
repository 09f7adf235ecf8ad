import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { labelFilter, LABEL } from '../../src/labels.js';
import { tmpfsMountsUnder } from '../../src/memory/tmpfs.js';
import { shmPlugin } from './shm-support.js';
import { docker, instance, runCli, tempDir } from './support.js';

type Handle = { id: string; path: string };
type Row = { id: string; owner: string; holders: { plugin: string }[] };

/**
 * A controller killed with SIGKILL leaves its pool mounted and its index written; the next
 * controller of the same home takes it over: segments a running (adopted) plugin owns or
 * holds are kept, with their access; the others are freed, their files and tmpfs removed.
 * A clean `down` leaves no mount at all.
 */
describe('shared memory across a controller killed with SIGKILL', () => {
  it('the next controller keeps what adopted plugins own or hold and frees the rest; down leaves nothing', async () => {
    const root = tempDir('lm-shm-restart-');
    shmPlugin(root, 'shm-a', ['shm-b'], { restart: '{ policy: never }' });
    shmPlugin(root, 'shm-b', ['shm-a']);
    const inst = `${instance()}-shm-restart`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst };
    const home = resolveHome(env);
    const pool = path.join(home.dir, 'pool');
    const cli = async (...args: string[]) => {
      const r = await runCli(args, { env, timeoutMs: 180_000 });
      expect(r.code, `logomesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const call = async (target: string, data: unknown) => JSON.parse(await cli('call', target, JSON.stringify(data))) as unknown;
    const up = async () => Number(/\(pid (\d+)\)/.exec((await runCli(['up', '-d', root], { env, timeoutMs: 180_000 })).stderr)?.[1]);
    const rows = async () => JSON.parse(await cli('segments', '--json')) as Row[];
    try {
      const pid = await up();
      expect(pid).toBeGreaterThan(0);
      const alone = (await call('shm-a.alloc', { size: 4096, text: 'alone' })) as Handle;
      const held = (await call('shm-a.alloc', { size: 4096, text: 'held by b' })) as Handle;
      expect(await call('shm-a.op', { segment: held.id, what: 'share', plugins: ['shm-b'] })).toMatchObject({ ok: true });
      const table = await cli('segments');
      expect(table).toMatch(new RegExp(`${held.id}\\s+shm-a\\s+4\\.0 KiB\\s+rw\\s+shm-b\\(r\\)`));

      process.kill(pid, 'SIGKILL');
      // While no controller runs, shm-a goes away: the next controller cannot adopt it.
      const engine = await docker();
      const [a] = await engine.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.plugin}=shm-a`] }) });
      await engine.getContainer(a!.Id).remove({ force: true });
      expect(tmpfsMountsUnder(pool)).toContain(pool);

      await up();
      const after = await rows();
      // shm-a was started anew: what it owned alone is gone, what shm-b (adopted) holds stays.
      expect(after.map((r) => r.id)).toEqual([held.id]);
      expect(existsSync(path.join(pool, alone.path))).toBe(false);
      expect(await call('shm-b.read', { seg: held })).toBe('held by b');
    } finally {
      await runCli(['down'], { env, timeoutMs: 60_000 });
    }
    expect(tmpfsMountsUnder(pool)).toEqual([]);
    expect((await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length).toBe(0);
  }, 400_000);

  it('a controller killed with SIGKILL and never started again: logomesh clean removes its pool too', async () => {
    const root = tempDir('lm-shm-clean-');
    shmPlugin(root, 'shm-a', []);
    const inst = `${instance()}-shm-clean`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst };
    const pool = path.join(resolveHome(env).dir, 'pool');
    const r = await runCli(['up', '-d', root], { env, timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const pid = Number(/\(pid (\d+)\)/.exec(r.stderr)?.[1]);
    try {
      await runCli(['call', 'shm-a.alloc', JSON.stringify({ size: 4096 })], { env, timeoutMs: 60_000 });
      expect(tmpfsMountsUnder(pool).length).toBe(2);
      process.kill(pid, 'SIGKILL');
      const cleaned = await runCli(['clean'], { env, timeoutMs: 60_000 });
      expect(cleaned.code, cleaned.stderr).toBe(0);
      expect(cleaned.stdout).toMatch(/removed 1 container\(s\), .*and the shared-memory pool of .* \(2 tmpfs\)/);
    } finally {
      await runCli(['clean'], { env, timeoutMs: 60_000 });
    }
    expect(tmpfsMountsUnder(pool)).toEqual([]);
  }, 400_000);
});
