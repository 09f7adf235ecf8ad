import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, runCli, sleep, tempDir, until } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, extra: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, 'sandbox-report.mjs'), path.join(dir, 'main.mjs'));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\nresources: { maxMemoryMB: 80, maxCpuPercent: 40, maxProcesses: 24, maxFileHandles: 96 }\ncoordination:\n  exposesMethods: [container, sandbox, crash]\n${extra}\n`,
  );
}


/** Wait until the engine no longer knows the container. */
async function removed(id: string): Promise<void> {
  const engine = await docker();
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    if (await engine.getContainer(id).inspect().then(() => false, () => true)) return;
    await sleep(50);
  }
  throw new Error(`container ${id} was not removed`);
}

const waiting = (host: Controller, id: string, not?: string) => () => {
  const s = host.status(id).standby;
  return s?.state === 'waiting' && s.containerId && s.containerId !== not ? s.containerId : undefined;
};

type Sandbox = Record<string, unknown> & { env: string[] };

describe('a warm standby in real containers', () => {
  let host: Controller;
  let home: Home;
  const inst = `${instance()}-standby`;

  beforeAll(async () => {
    const root = tempDir('lm-standby-');
    plugin(root, 'keeper', 'restart: { standby: true, backoffMs: 5000 }');
    plugin(root, 'plain', 'restart: { backoffMs: 200 }');
    home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000, kernelLog: false });
    host.loadDirectory(root);
    await host.startAll();
  });
  afterAll(async () => {
    await host?.close();
  });

  it('is started with the same sandbox, never serves before its turn, and takes over after a crash', async () => {
    const engine = await docker();
    const first = host.status('keeper');
    const standbyId = await until('a standby waiting', waiting(host, 'keeper'));
    expect(standbyId).not.toBe(first.containerId);
    // The engine runs both with the same spec: user, limits, seccomp profile, read-only root.
    const a = await engine.getContainer(first.containerId!).inspect();
    const b = await engine.getContainer(standbyId).inspect();
    const spec = (i: typeof a) => ({ user: i.Config.User, image: i.Config.Image, cmd: i.Config.Cmd, h: { ...i.HostConfig, Binds: null, Mounts: i.HostConfig.Mounts?.map((m) => m.Target) } });
    expect(spec(b)).toEqual(spec(a));
    expect(b.State.Running).toBe(true);
    expect(b.Config.Labels[LABEL.plugin]).toBe('keeper');
    expect(b.Name).toMatch(/-standby$/);
    // Every call reaches the active container, whatever the standby does meanwhile.
    for (let i = 0; i < 20; i++) expect(await host.call('keeper', 'container', {})).toBe(first.containerId);
    const before = (await host.call('keeper', 'sandbox', {})) as Sandbox;

    await host.call('keeper', 'crash', {}, 2_000).catch(() => undefined);
    // backoffMs is 5 s: only the standby can have it ready again before that.
    const ready = await until('keeper switched to its standby', () => (host.status('keeper').containerId === standbyId && host.status('keeper').state === 'ready' ? host.status('keeper') : undefined), 4_000);
    expect(ready.restarts).toBe(1);
    // Switched in when the kernel said its processes were gone; the cause follows with the engine's report.
    const told = await until('the cause recorded', () => host.status('keeper').lastError, 10_000);
    expect(told).toMatchObject({ code: 'LM_PLUGIN_EXITED', message: expect.stringMatching(/exited with code 7/) });
    expect(await host.call('keeper', 'container', {})).toBe(standbyId);
    const after = (await host.call('keeper', 'sandbox', {})) as Sandbox;
    // The same uid, groups, limits, mounts and seccomp mode, as the kernel shows them inside.
    expect({ ...after, env: after.env.filter((k) => k !== 'LOGOMESH_STANDBY') }).toEqual(before);
    expect(after.env).toContain('LOGOMESH_STANDBY');
    expect(after).toMatchObject({ seccomp: '2', noNewPrivs: '1', capEff: '0000000000000000', memoryLimit: String(80 * 1024 * 1024), cpuQuota: '40000', pidsMax: '24' });
    // The crashed container is gone; a new standby is prepared behind.
    await removed(first.containerId!);
    const next = await until('a new standby', waiting(host, 'keeper', standbyId));
    expect(next).not.toBe(first.containerId);
    const renamed = await engine.getContainer(standbyId).inspect();
    expect(renamed.Name).not.toMatch(/-standby$/);
  });

  it('a restart by hand switches to the standby, and the container it replaced goes', async () => {
    const active = host.status('keeper').containerId!;
    const standbyId = await until('a standby waiting', waiting(host, 'keeper', active));
    const t = Date.now();
    await host.restart('keeper');
    const ms = Date.now() - t;
    expect(host.status('keeper')).toMatchObject({ state: 'ready', containerId: standbyId });
    expect(await host.call('keeper', 'container', {})).toBe(standbyId);
    console.log(`restart by hand with a standby: ready after ${ms} ms`);
    await removed(active);
  });

  it('a standby that dies before its turn is replaced; the plugin is not touched', async () => {
    const active = host.status('keeper').containerId!;
    const standbyId = await until('a standby waiting', waiting(host, 'keeper', active));
    await (await docker()).getContainer(standbyId).kill();
    const next = await until('another standby', waiting(host, 'keeper', standbyId));
    expect(next).not.toBe(active);
    // Restarts count failures of the plugin only (the one crash above; a restart by hand is none).
    expect(host.status('keeper')).toMatchObject({ state: 'ready', containerId: active, restarts: 1 });
  });

  it('a plugin without a standby has none, and restarts as before', async () => {
    expect(host.status('plain').standby).toBeUndefined();
    const containers = await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.plugin}=plain`] }) });
    expect(containers).toHaveLength(1);
  });

  it('leaves nothing behind when the controller closes', async () => {
    await until('a standby waiting', waiting(host, 'keeper', host.status('keeper').containerId));
    expect(readdirSync(home.socketsDir).some((d) => d.startsWith('keeper.'))).toBe(true);
    await host.close();
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`] }) });
    expect(left).toEqual([]);
    expect(existsSync(home.socketsDir)).toBe(false);
  });
});

/**
 * The operator sets the standby (LOGOMESH_STANDBY) for a plugin whose manifest does not ask
 * for one; `logomesh restart` switches to it; then the controller is killed with SIGKILL. The
 * next controller of the home adopts the container that was switched in (its hub socket is
 * in the standby's folder), and removes the standby that was waiting: it never serves.
 */
describe('a standby across kill -9 of the controller', () => {
  it('the container switched in is adopted, the waiting standby is not', async () => {
    const root = tempDir('lm-standby-adopt-');
    plugin(root, 'kept', 'restart: { backoffMs: 200 }');
    const inst = `${instance()}-standby-adopt`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst, LOGOMESH_STANDBY: 'kept' };
    const home = resolveHome(env);
    const cli = async (...args: string[]) => {
      const r = await runCli(args, { env, timeoutMs: 120_000 });
      expect(r.code, `logomesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const ps = async () => (JSON.parse(await cli('ps', '--json')) as { id: string; containerId: string; standby?: { state: string; containerId?: string } }[])[0]!;
    let second: Controller | undefined;
    try {
      const up = await runCli(['up', '-d', root], { env, timeoutMs: 120_000 });
      expect(up.code, up.stderr).toBe(0);
      const pid = Number(/\(pid (\d+)\)/.exec(up.stderr)?.[1]);
      let first = await ps();
      for (let i = 0; i < 1200 && first.standby?.state !== 'waiting'; i++) {
        await sleep(50);
        first = await ps();
      }
      expect(first.standby).toMatchObject({ state: 'waiting' });
      await cli('restart', 'kept');
      const switched = await ps();
      expect(switched.containerId).toBe(first.standby!.containerId);
      expect(JSON.parse(await cli('call', 'kept.container'))).toBe(switched.containerId);
      let again = await ps();
      for (let i = 0; i < 1200 && again.standby?.state !== 'waiting'; i++) {
        await sleep(50);
        again = await ps();
      }
      const waitingStandby = again.standby!.containerId!;
      // The renamed container was switched in; wait for the rename before the kill.
      for (let i = 0; i < 200 && (await (await docker()).getContainer(switched.containerId).inspect()).Name.endsWith('-standby'); i++) await sleep(50);

      process.kill(pid, 'SIGKILL');
      second = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000, kernelLog: false });
      second.loadDirectory(root);
      await second.startAll();
      expect(second.status('kept')).toMatchObject({ state: 'ready', containerId: switched.containerId });
      expect(await second.call('kept', 'container', {})).toBe(switched.containerId);
      await removed(waitingStandby);
    } finally {
      if (second) await second.close();
      else await runCli(['down'], { env, timeoutMs: 60_000 });
    }
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`] }) });
    expect(left).toEqual([]);
  }, 240_000);
});
