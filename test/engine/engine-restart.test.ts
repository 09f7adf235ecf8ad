import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, sleep, tempDir } from '../integration/support.js';

/** Only where this suite manages the engine itself: root, local socket, our dockerd. */
function engineIsOurs(): boolean {
  if (process.getuid?.() !== 0 || process.env.DOCKER_HOST) return false;
  const ps = spawnSync('pgrep', ['-a', 'dockerd'], { encoding: 'utf8' });
  return ps.status === 0 && ps.stdout.includes('--live-restore');
}

async function until(what: string, fn: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe.runIf(engineIsOurs())('the Docker engine restarts under a running controller', () => {
  it('the controller says the engine is gone, plugins keep answering (live-restore), and all is well after', async () => {
    const root = tempDir('lm-engine-');
    const dir = path.join(root, 'steady');
    mkdirSync(dir);
    copyFileSync(path.join(REPO, 'test/fixtures/controller/probe.mjs'), path.join(dir, 'main.mjs'));
    writeFileSync(path.join(dir, 'plugin.yaml'), 'id: steady\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  subscribes: [news.*]\n');
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-engine` });
    const host = await Controller.create({ log: silentLogger, home, docker: await docker(), engineCheckMs: 200 });
    try {
      host.loadDirectory(root);
      await host.startAll();
      const before = host.status('steady').containerId;
      expect(await host.call('steady', 'echo', 'before')).toBe('before');

      execFileSync('pkill', ['-TERM', '-x', 'dockerd']);
      await until('the controller to notice', () => !host.engineStatus().up, 20_000);
      // The hub is the controller's own: calls go on while the engine is away.
      expect(await host.call('steady', 'echo', 'during')).toBe('during');

      execFileSync('bash', [path.join(REPO, 'src/provision/provision.sh'), 'engine'], { stdio: 'ignore', timeout: 90_000 });
      await until('the controller to see the engine again', () => host.engineStatus().up, 30_000);
      expect(await host.call('steady', 'echo', 'after')).toBe('after');
      const after = host.status('steady');
      expect(after.state).toBe('ready');
      expect(after.containerId).toBe(before);
      expect(after.restarts).toBe(0);
    } finally {
      await host.close();
    }
  });
});
