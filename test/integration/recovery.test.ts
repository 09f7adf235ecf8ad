import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, tempDir, until } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, file: string, extra: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, file), path.join(dir, 'main.mjs'));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  subscribes: [news.*]\n${extra}\n`,
  );
}

/** The host pid of the plugin's own process (not the container's init). */
async function pluginPid(containerId: string): Promise<number> {
  const top = await (await docker()).getContainer(containerId).top({ ps_args: '-o pid,args' });
  // Not the container's init (`docker-init -- node ...`): the node process itself.
  const row = top.Processes.find((p: string[]) => p[1]?.startsWith('node '));
  if (!row) throw new Error(`no node process in ${JSON.stringify(top.Processes)}`);
  return Number(row[0]);
}


describe('recovery: health checks and restart policies in real containers', () => {
  let host: Controller;
  beforeAll(async () => {
    const root = tempDir('lm-recovery-');
    plugin(root, 'victim', 'probe.mjs', 'restart: { backoffMs: 200 }\nhealth: { intervalMs: 500, timeoutMs: 400 }');
    plugin(root, 'sleepy', 'probe.mjs', 'restart: { backoffMs: 200 }\nhealth: { intervalMs: 500, timeoutMs: 400 }');
    plugin(root, 'crashy', 'crashy.mjs', 'restart: { backoffMs: 100, maxRetries: 2 }');
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-recovery` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000 });
    host.loadDirectory(root);
    await host.start('victim');
    await host.start('sleepy');
  });
  afterAll(async () => {
    await host?.close();
  });

  it('kill -9 of the plugin process: restarted within its backoff, calls work again', async () => {
    const before = host.status('victim');
    const pid = await pluginPid(before.containerId!);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await until('victim to restart', () => (host.status('victim').state === 'restarting' ? true : undefined), 5_000);
    await expect(host.call('victim', 'echo', 1)).rejects.toMatchObject({ code: 'LM_PLUGIN_UNAVAILABLE' });
    await until('victim ready again', () => (host.status('victim').state === 'ready' ? true : undefined));
    const restartMs = Date.now() - killedAt;
    const after = host.status('victim');
    expect(after.restarts).toBe(1);
    expect(after.containerId).not.toBe(before.containerId);
    // Usually the engine's exit report; on a loaded machine a health check may notice first.
    expect(after.lastError?.code).toMatch(/^(LM_PLUGIN_EXITED|LM_UNHEALTHY)$/);
    expect(await host.call('victim', 'echo', 'back')).toBe('back');
    expect(restartMs).toBeLessThan(10_000);
    console.log(`restart after kill -9: ${restartMs} ms (backoff 200 ms)`);
  });

  it('a hung plugin (SIGSTOP) is found unhealthy and restarted', async () => {
    const before = host.status('sleepy');
    const pid = await pluginPid(before.containerId!);
    process.kill(pid, 'SIGSTOP');
    await until('sleepy unhealthy', () => (host.status('sleepy').lastError?.code === 'LM_UNHEALTHY' ? true : undefined), 10_000);
    await until('sleepy ready again', () => (host.status('sleepy').state === 'ready' ? true : undefined));
    expect(host.status('sleepy').restarts).toBe(1);
    expect(host.status('sleepy').containerId).not.toBe(before.containerId);
    expect(await host.call('sleepy', 'echo', 'awake')).toBe('awake');
  });

  it('a crash loop ends in failed after maxRetries, with the reason and output in its status', async () => {
    await host.start('crashy');
    const s = await until('crashy failed', () => {
      const st = host.status('crashy');
      return st.state === 'failed' ? st : undefined;
    });
    expect(s.restarts).toBe(2);
    expect(s.lastError?.code).toBe('LM_RESTART_LIMIT');
    expect(s.lastError?.message).toContain('failed 3 times in a row');
    expect(s.lastError?.message).toContain('crashy: giving up after start');
    await expect(host.call('crashy', 'echo', 1)).rejects.toMatchObject({ code: 'LM_PLUGIN_UNAVAILABLE' });
  });
});
