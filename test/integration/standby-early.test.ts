import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, tempDir, until } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, fixture: string, runtime: 'node' | 'python', methods: string[], extra: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  const main = runtime === 'node' ? 'main.mjs' : 'main.py';
  copyFileSync(path.join(FIX, fixture), path.join(dir, main));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    `id: ${id}\nversion: 1.0.0\nruntime: ${runtime}\nentrypoint: ${main}\nresources: { maxMemoryMB: 80, maxCpuPercent: 40, maxProcesses: 24, maxFileHandles: 96 }\ncoordination:\n  exposesMethods: [${methods.join(', ')}]\n${extra}\n`,
  );
}

interface Entry {
  who: string;
  action: string;
  resource: string;
  result: string;
  code?: string;
  reason?: string;
}

/** The live inotify watches of this process (the controller runs in it): none may be left behind. */
function inotifyWatches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    try {
      n += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/**
 * The switch to a warm standby at the end of the active container's processes (the kernel's
 * cgroup.events), before the engine reports the exit; and the verdict that follows when the
 * engine does: kept for a crash or an OOM kill, undone for a seccomp kill (quarantined) and a
 * clean exit under on-failure, with nothing of the plugin left running.
 */
describe('a standby switched in when the kernel says the processes are gone', () => {
  let host: Controller;
  let home: Home;
  let watchesBefore: number;
  const inst = `${instance()}-standby-early`;
  const audit = (id: string): Entry[] =>
    readFileSync(home.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Entry)
      .filter((e) => e.resource === id);
  const waiting = (id: string, not?: string) => () => {
    const s = host.status(id).standby;
    return s?.state === 'waiting' && s.containerId && s.containerId !== not ? s.containerId : undefined;
  };
  const containersOf = async (id: string) => (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.plugin}=${id}`] }) });

  beforeAll(async () => {
    watchesBefore = inotifyWatches();
    const root = tempDir('lm-standby-early-');
    const node = ['container', 'exit', 'hog'];
    plugin(root, 'killed', 'standby-ends.mjs', 'node', node, 'restart: { standby: true, backoffMs: 5000 }');
    plugin(root, 'clean', 'standby-ends.mjs', 'node', node, 'restart: { policy: on-failure, standby: true, backoffMs: 5000 }');
    plugin(root, 'hungry', 'standby-ends.mjs', 'node', node, 'restart: { standby: true, backoffMs: 5000 }');
    plugin(root, 'attacker', 'syscall-attacker.py', 'python', ['echo', 'attack_self', 'attack_child'], 'restart: { policy: always, standby: true, backoffMs: 5000 }');
    home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000, kernelLog: false });
    host.loadDirectory(root);
    await host.startAll();
  }, 240_000);
  afterAll(async () => {
    await host?.close();
  });

  it('a SIGKILL of the container switches in before the engine reports the exit; the standby serves, a new one is prepared', async () => {
    const engine = await docker();
    const first = host.status('killed').containerId!;
    const standby = await until('a standby waiting', waiting('killed'));
    const pid = (await engine.getContainer(first).inspect()).State.Pid;
    const order: string[] = [];
    const ready = new Promise<void>((resolve) => {
      const on = (id: string) => {
        if (id !== 'killed') return;
        // Emitted inside the switch (the hub answers the standby's hello), before the record names the container.
        order.push('ready');
        host.hub.off('ready', on);
        resolve();
      };
      host.hub.on('ready', on);
    });
    const reported = engine
      .getContainer(first)
      .wait()
      .then(() => order.push('the engine reported the exit'));
    process.kill(pid, 'SIGKILL');
    await Promise.all([ready, reported]);
    // The kernel's word comes first: the engine reports only once it has reaped the container's first process.
    expect(order).toEqual(['ready', 'the engine reported the exit']);
    expect(host.status('killed').containerId).toBe(standby);
    const after = await until('the cause recorded', () => (host.status('killed').lastError ? host.status('killed') : undefined), 10_000);
    expect(after).toMatchObject({ state: 'ready', containerId: standby, restarts: 1, lastError: { code: 'LM_PLUGIN_EXITED' } });
    expect(after.lastError?.message).toMatch(/exited with code 137/);
    expect(await host.call('killed', 'container', {})).toBe(standby);
    // The audit trail: the switch, then the cause once the engine told it (the other way round without the early switch).
    const trail = await until('the violation audited', () => {
      const t = audit('killed').filter((e) => (e.action === 'start' && /standby/.test(e.reason ?? '')) || e.action === 'violation');
      return t.length >= 2 ? t : undefined;
    });
    expect(trail.map((e) => e.action)).toEqual(['start', 'violation']);
    expect(trail[0]!.reason).toMatch(/processes were gone/);
    expect(trail[1]).toMatchObject({ who: 'killed', result: 'failed', code: 'LM_PLUGIN_EXITED' });
    // The container switched out is removed; a new standby is prepared behind.
    await removed(first);
    const next = await until('a new standby', waiting('killed', standby));
    expect(next).not.toBe(first);
    const ids = (await containersOf('killed')).map((c) => c.Id);
    expect(ids).not.toContain(first);
    expect(ids.sort()).toEqual([standby, next].sort());
  });

  it('an OOM kill switches in, and the cause is LM_RESOURCE_MEMORY', async () => {
    const first = host.status('hungry').containerId!;
    const standby = await until('a standby waiting', waiting('hungry'));
    await host.call('hungry', 'hog', {}, 20_000).catch(() => undefined);
    const after = await until('the OOM kill recorded', () => {
      const s = host.status('hungry');
      return s.containerId === standby && s.lastError ? s : undefined;
    }, 20_000);
    expect(after).toMatchObject({ state: 'ready', containerId: standby, restarts: 1, lastError: { code: 'LM_RESOURCE_MEMORY' } });
    expect(await host.call('hungry', 'container', {})).toBe(standby);
    await removed(first);
    await until('a new standby', waiting('hungry', standby));
  });

  it('a clean exit under on-failure ends the plugin exited, the standby switched in stopped; nothing is left', async () => {
    await until('a standby waiting', waiting('clean'));
    await host.call('clean', 'exit', { code: 0 }, 5_000).catch(() => undefined);
    const after = await until('the plugin exited', () => (host.status('clean').state === 'exited' ? host.status('clean') : undefined), 20_000);
    expect(after).toMatchObject({ state: 'exited', restarts: 0, lastError: { code: 'LM_PLUGIN_EXITED' } });
    expect(after.lastError?.message).toMatch(/exited with code 0/);
    expect(after.standby).toBeUndefined();
    await expectNone('clean');
    const trail = audit('clean')
      .map((e) => e.action)
      .filter((a) => a === 'start' || a === 'violation' || a === 'stop');
    // The switch was made and undone: its start, the cause, and the stop of the standby switched in.
    expect(trail.slice(-3)).toEqual(['start', 'violation', 'stop']);
  });

  it('a seccomp kill ends the plugin quarantined, with no container of it left', async () => {
    await until('a standby waiting', waiting('attacker'), 120_000);
    expect(await host.call('attacker', 'echo', { up: true }, 5_000)).toEqual({ up: true });
    await host.call('attacker', 'attack_self', { syscall: 'mount' }, 5_000).catch(() => undefined);
    const after = await until('the plugin quarantined', () => (host.status('attacker').state === 'failed' ? host.status('attacker') : undefined), 20_000);
    expect(after).toMatchObject({ state: 'failed', restarts: 0, lastError: { code: 'LM_SECCOMP_VIOLATION' } });
    await expectNone('attacker');
    const violations = audit('attacker').filter((e) => e.action === 'violation');
    expect(violations.map((e) => e.code)).toEqual(['LM_SECCOMP_VIOLATION']);
  });

  it('leaves no container and no inotify watch behind when the controller closes', async () => {
    await host.close();
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`] }) });
    expect(left).toEqual([]);
    expect(inotifyWatches()).toBe(watchesBefore);
  });

  /** The engine no longer knows the container (its removal is in flight for a moment). */
  async function removed(containerId: string): Promise<void> {
    const engine = await docker();
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      if (await engine.getContainer(containerId).inspect().then(() => false, () => true)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`container ${containerId} was not removed`);
  }

  /** No container of the plugin, running or not (removals are in flight for a moment). */
  async function expectNone(id: string): Promise<void> {
    const end = Date.now() + 30_000;
    let left = await containersOf(id);
    while (left.length > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      left = await containersOf(id);
    }
    expect(left.map((c) => `${c.Names[0]} ${c.State}`)).toEqual([]);
  }
});

/**
 * The same seccomp kill with the kernel log followed: its record may come before the cgroup is
 * empty (the plugin is quarantined at once) or after the early switch (the record is then the
 * verdict that undoes it). Either way one failure, audited once with the call named, and
 * nothing of the plugin left.
 */
describe('a seccomp kill with a standby, the kernel log followed', () => {
  it('ends quarantined, audited once, with no container left', async () => {
    const inst = `${instance()}-standby-kmsg`;
    const root = tempDir('lm-standby-kmsg-');
    plugin(root, 'attacker', 'syscall-attacker.py', 'python', ['echo', 'attack_self', 'attack_child'], 'restart: { policy: always, standby: true, backoffMs: 5000 }');
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst });
    const host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000 });
    const containers = async () => (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`] }) });
    try {
      host.loadDirectory(root);
      await host.startAll();
      await until('a standby waiting', () => host.status('attacker').standby?.state === 'waiting' || undefined, 120_000);
      await host.call('attacker', 'attack_self', { syscall: 'mount' }, 5_000).catch(() => undefined);
      const after = await until('the plugin quarantined', () => (host.status('attacker').state === 'failed' ? host.status('attacker') : undefined), 20_000);
      expect(after).toMatchObject({ restarts: 0, lastError: { code: 'LM_SECCOMP_VIOLATION' } });
      let left = await containers();
      for (let i = 0; i < 300 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await containers();
      }
      expect(left.map((c) => `${c.Names[0]} ${c.State}`)).toEqual([]);
      const violations = readFileSync(home.auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Entry)
        .filter((e) => e.resource === 'attacker' && e.action === 'violation');
      expect(violations.map((e) => e.code)).toEqual(['LM_SECCOMP_VIOLATION']);
    } finally {
      await host.close();
    }
    expect(await containers()).toEqual([]);
  }, 240_000);
});
