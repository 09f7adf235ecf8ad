import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/control/client.js';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { LABEL, labelFilter, OWNER } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { tmpfsMountsUnder, unmount } from '../../src/memory/tmpfs.js';
import { node } from '../../src/runtimes/node.js';
import { compose as composeIn, shareHome, type Done } from './compose-support.js';
import { shmPlugin } from './shm-support.js';
import { docker, instance, tempDir } from './support.js';

type Handle = { id: string; owner: string; size: number; path: string };

/**
 * Shared memory under `docker compose up`: the controller mounts the pool's tmpfs from its
 * container in the home, which compose.yaml binds rshared, so they reach the host and the
 * plugins. The same kernel-enforced guarantees as on the host (per-plugin uid and ACL, one
 * tmpfs per owner), a controller killed with its container leaves the mounts on the host and
 * the next one adopts or unmounts them, and `down` leaves none.
 */

const PROJECT = `lmtest-shm-${randomBytes(4).toString('hex')}`;
const UP_TIMEOUT_MS = 5 * 60_000;
const DOWN_TIMEOUT_MS = 2 * 60_000;

describe('shared memory under docker compose', () => {
  const home = tempDir('lm-compose-shm-');
  const pool = path.join(home, 'pool');
  const plugins = tempDir('lm-compose-shm-plugins-');
  const pluginInstance = `${instance()}-compose-shm`;
  const env = {
    LOGOMESH_COMPOSE_HOME: home,
    LOGOMESH_COMPOSE_PLUGINS: plugins,
    // Empty: free host ports, so this can run next to another compose project.
    LOGOMESH_COMPOSE_PORT: '',
    LOGOMESH_COMPOSE_CONSOLE_PORT: '',
    LOGOMESH_HUB_TOKEN: randomBytes(24).toString('hex'),
    LOGOMESH_INSTANCE: pluginInstance,
  };
  const compose = (args: string[], timeoutMs = UP_TIMEOUT_MS): Promise<Done> => composeIn(PROJECT, args, env, timeoutMs);
  const upWait = async (...extra: string[]): Promise<Done> => {
    const up = await compose(['up', '-d', ...extra, '--wait', '--wait-timeout', String(UP_TIMEOUT_MS / 1000)], UP_TIMEOUT_MS + 30_000);
    if (up.code !== 0) up.out += `\n--- controller log ---\n${(await compose(['logs', '--no-color', '--tail', '40'], 30_000)).out}`;
    return up;
  };
  const client = new ControlClient(path.join(home, 'control.sock'));
  const call = (target: string, method: string, data: unknown): Promise<unknown> => client.call(target, method, data);
  const alloc = (id: string, size: number, text = '') => call(id, 'alloc', { size, text }) as Promise<Handle>;
  const attack = (id: string, handle: Handle, how: string) => call(id, 'attack', { handle, how }) as Promise<string>;
  const read = (id: string, handle: Handle) => call(id, 'read', { seg: handle }) as Promise<string>;
  let unshare = (): void => undefined;
  let downDone = false;

  beforeAll(async () => {
    shmPlugin(plugins, 'shm-a', ['shm-b', 'shm-c'], { memoryMB: 64 });
    shmPlugin(plugins, 'shm-b', ['shm-a', 'shm-c']);
    shmPlugin(plugins, 'shm-c', ['shm-a', 'shm-b']);
    unshare = shareHome(home);
    // What images/controller/prepare.sh does: the Node.js binary the controller image copies in.
    for (const image of node.images) await image.prepare?.(silentLogger);
  }, UP_TIMEOUT_MS);

  afterAll(async () => {
    if (!downDone) await compose(['down', '-v', '--timeout', '30'], DOWN_TIMEOUT_MS);
    await removeByLabel(await docker(), pluginInstance);
    // Whatever a failed test left mounted on the host (deepest first), then the self-bind.
    for (const m of tmpfsMountsUnder(pool)) await unmount(m);
    unshare();
  }, DOWN_TIMEOUT_MS + 60_000);

  it('two plugins share a segment; a third with the pool but not on its ACL gets EACCES from the kernel', async () => {
    const up = await upWait('--build');
    expect(up.code, up.out).toBe(0);
    // The controller mounted them in its container; they are on the host, where the engine binds them.
    expect(tmpfsMountsUnder(pool)).toEqual([pool]);
    const h = await alloc('shm-a', 4096, 'hello over compose');
    expect(tmpfsMountsUnder(pool)).toEqual([path.join(pool, 'shm-a'), pool]);
    expect(await read('shm-a', h)).toBe('hello over compose');
    expect(await attack('shm-b', h, 'open-read')).toBe('EACCES');
    expect(await call('shm-a', 'op', { segment: h.id, what: 'share', plugins: ['shm-b'] })).toMatchObject({ ok: true });
    expect(await read('shm-b', h)).toBe('hello over compose');
    expect(await attack('shm-b', h, 'open-write')).toBe('EACCES');
    expect(await attack('shm-c', h, 'open-read')).toBe('EACCES');
    expect(await read('shm-c', h)).toBe('LM_PERMISSION_DENIED');
    // Root's folders and file: no plugin lists, creates or chmods anything in the pool.
    for (const how of ['list-pool', 'create-root', 'create']) expect(await attack('shm-c', h, how), how).toBe('EACCES');
    expect(await attack('shm-a', h, 'chmod')).toBe('EPERM');
    // The owner's own tmpfs, sized by the controller from its container: the kernel's quota.
    expect(await attack('shm-a', h, 'grow')).toBe('ENOSPC');
  }, UP_TIMEOUT_MS + 120_000);

  it('the controller container killed: its mounts stay on the host, the next controller adopts what running plugins hold and unmounts the rest', async () => {
    const [held] = (await client.segments()).map((r) => r.id);
    const orphan = await alloc('shm-c', 4096, 'owned by c');
    expect(tmpfsMountsUnder(pool)).toContain(path.join(pool, 'shm-c'));

    const kill = await compose(['kill', '-s', 'SIGKILL', 'controller'], 60_000);
    expect(kill.code, kill.out).toBe(0);
    expect(tmpfsMountsUnder(pool).sort()).toEqual([pool, path.join(pool, 'shm-a'), path.join(pool, 'shm-c')].sort());
    // While no controller runs, shm-c goes away: the next controller cannot adopt it.
    const engine = await docker();
    const [c] = await engine.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${pluginInstance}`, `${LABEL.plugin}=shm-c`] }) });
    await engine.getContainer(c!.Id).remove({ force: true });

    const up = await upWait();
    expect(up.code, up.out).toBe(0);
    const rows = await client.segments();
    expect(rows.map((r) => r.id)).toEqual([held]);
    // shm-c's tmpfs was unmounted on the host, from the new controller's container.
    expect(tmpfsMountsUnder(pool).sort()).toEqual([pool, path.join(pool, 'shm-a')].sort());
    expect(existsSync(path.join(pool, orphan.path))).toBe(false);
    const h = { id: held!, owner: 'shm-a', size: 4096, path: `shm-a/${held}` };
    expect(await read('shm-b', h)).toBe('hello over compose');
    expect(await attack('shm-c', h, 'open-read')).toBe('EACCES');
  }, UP_TIMEOUT_MS + 120_000);

  it('a controller container whose home is bound without rshared refuses to mount the pool (LM_MEMORY_POOL), instead of plugins getting an empty folder', () => {
    // The controller image the first test built, the pool check as the controller runs it, the home bound rprivate (Docker's default).
    const script = `import('/opt/logomesh/dist/memory/propagation.js').then((m) => { m.checkPropagation(${JSON.stringify(pool)}); console.log('accepted'); }).catch((e) => console.log(e.code + ' ' + e.message))`;
    const run = (propagation: string) =>
      spawnSync('docker', ['run', '--rm', '--label', `${LABEL.owner}=${OWNER}`, '--label', `${LABEL.instance}=${pluginInstance}`, '--cap-drop', 'ALL', '--cap-add', 'SYS_ADMIN', '--network', 'none', '--entrypoint', 'node', '--mount', `type=bind,source=${home},target=${home},bind-propagation=${propagation}`, 'logomesh/controller:latest', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    const refused = run('rprivate');
    expect(refused.stdout, refused.stderr).toMatch(/^LM_MEMORY_POOL the pool's folder .* is on the mount .*, which is not shared/);
    const accepted = run('rshared');
    expect(accepted.stdout.trim(), accepted.stderr).toBe('accepted');
  });

  it('compose down frees every segment and unmounts the pool on the host', async () => {
    const down = await compose(['down', '-v'], DOWN_TIMEOUT_MS);
    downDone = down.code === 0;
    expect(down.code, down.out).toBe(0);
    expect(tmpfsMountsUnder(pool)).toEqual([]);
    expect(existsSync(pool)).toBe(false);
    expect(await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(pluginInstance)) })).toEqual([]);
  }, DOWN_TIMEOUT_MS + 30_000);
});
