import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { parseState } from '../../src/controller/state-store.js';
import { labelFilter } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, runCli, tempDir, until } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');
const N = 10;

function plugin(root: string, id: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, 'probe.mjs'), path.join(dir, 'main.mjs'));
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  subscribes: [news.*]\n`);
}

/** The plugin containers of `inst`, with their state. */
async function containers(inst: string): Promise<{ id: string; state: string }[]> {
  const found = await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) });
  return found.map((c) => ({ id: c.Id, state: c.State }));
}

/** Processes whose command line is `lm-mount <pid> ...`: a mount helper of that controller. */
function helpersOf(pid: number): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0] ?? '') === 'lm-mount' && argv[1] === String(pid) && !/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))) found.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * A controller killed with SIGKILL in the middle of an `up` (at its first ready plugin, the
 * others between their staging mounts and their hello): the state file is whole, its mount
 * helper goes with it, and the next controller of the same home adopts or removes every
 * container it left and the staging mounts it held: each plugin ends with one container,
 * ready, and nothing else is left.
 */
describe('kill -9 of the controller in the middle of an up', () => {
  // At the first container created (not started: its staging mounts held, the other plugins
  // before it), and at the first plugin ready (the others started or starting).
  it.each(['container created', 'plugin ready'])('killed at the first "%s": the next controller adopts or removes everything; nothing is orphaned', async (at) => {
    const root = tempDir('lm-kill-mid-up-');
    for (let i = 0; i < N; i++) plugin(root, `mid${i}`);
    const inst = `${instance()}-kill-mid-up-${at.split(' ')[1]}`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst, LOGOMESH_LOG_LEVEL: 'debug' };
    const home = resolveHome(env);
    let pid = 0;
    const up = await runCli(['up', root], {
      env,
      timeoutMs: 180_000,
      onOutput: (out, child) => {
        if (pid === 0 && out.stderr.includes(`"msg":"${at}"`)) {
          pid = child.pid!;
          child.kill('SIGKILL');
        }
      },
    });
    expect(up.code, up.stderr).toBeNull(); // killed, not exited
    expect(pid).toBeGreaterThan(0);
    const left = await containers(inst);
    expect(left.length).toBeGreaterThan(0);
    // Replaced whole at each save: what the next controller reads is one state or the one before.
    const state = parseState(readFileSync(home.stateFile, 'utf8'));
    expect(state?.folders).toEqual(readdirSync(root).sort().map((id) => path.join(root, id)));
    await until('the killed controller\'s mount helper to end', () => (helpersOf(pid).length === 0 ? true : undefined), 10_000);

    const second = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000 });
    try {
      second.loadDirectory(root);
      await second.startAll();
      expect(second.list().map((p) => p.state)).toEqual(Array(N).fill('ready'));
      const now = await containers(inst);
      expect(now.map((c) => c.state)).toEqual(Array(N).fill('running'));
      expect(new Set(second.list().map((p) => p.containerId))).toEqual(new Set(now.map((c) => c.id)));
      // The staging folders and mounts of the killed controller are gone.
      expect(readdirSync(os.tmpdir()).filter((n) => n.startsWith(`lm-mounts-${pid}-`))).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`lm-mounts-${pid}-`);
    } finally {
      await second.close();
    }
    expect(await containers(inst)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`lm-mounts-${process.pid}-`);
  }, 300_000);
});
