import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { LABEL, labelFilter } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { removeStagingLeftovers } from '../../src/sandbox/mount-staging.js';
import { docker, instance, REPO, sleep, tempDir } from './support.js';

const EXAMPLES = path.join(REPO, 'examples', 'testing');

/** Every LogoMesh container and network whose instance label starts with `prefix`, and reapers of such instances. */
async function resourcesOf(prefix: string): Promise<string[]> {
  const engine = await docker();
  const filters = JSON.stringify(labelFilter());
  const containers = (await engine.listContainers({ all: true, filters })).filter((c) => (c.Labels[LABEL.instance] ?? c.Labels['io.logomesh.reaper-of'] ?? '').startsWith(prefix));
  const networks = (await engine.listNetworks({ filters })).filter((n) => (n.Labels?.[LABEL.instance] ?? '').startsWith(prefix));
  return [...containers.map((c) => `container ${c.Names[0]} (${c.Labels[LABEL.role]})`), ...networks.map((n) => `network ${n.Name}`)];
}

/** The test kit (logomesh/testing, docs/testing-plugins.md) as a plugin author uses it, and as a CI job that dies uses it. */
describe('the test kit', () => {
  it("runs its node:test example against the built package, imported by name", async () => {
    execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'ignore', timeout: 180_000 });
    const app = tempDir('lm-kit-app-');
    mkdirSync(path.join(app, 'node_modules'));
    symlinkSync(REPO, path.join(app, 'node_modules', 'logomesh'));
    symlinkSync(path.join(REPO, 'node_modules', 'testcontainers'), path.join(app, 'node_modules', 'testcontainers'));
    copyFileSync(path.join(EXAMPLES, 'node-test', 'greeter.test.mjs'), path.join(app, 'greeter.test.mjs'));
    const env = { ...process.env, TESTCONTAINERS_RYUK_DISABLED: 'true', GREETER_PLUGINS: path.join(EXAMPLES, 'plugins'), LOGOMESH_INSTANCE: `${instance()}-kitnode` };
    const run = await promisify(execFile)(process.execPath, ['--test', 'greeter.test.mjs'], { cwd: app, env, timeout: 300_000 }).catch((err: { stdout: string; stderr: string }) => err);
    expect(run.stdout, run.stderr).toMatch(/^# pass 3$/m);
    expect(run.stdout).toMatch(/^# fail 0$/m);
    expect(await resourcesOf(`${instance()}-kitnode`)).toEqual([]);
  }, 400_000);

  it('a test process killed while its plugins start leaves nothing behind', async () => {
    const prefix = `${instance()}-kitkill`;
    const script = `
      const { LogoMeshEnvironment } = await import(${JSON.stringify(path.join(REPO, 'src', 'testkit', 'index.ts'))});
      await new LogoMeshEnvironment(${JSON.stringify(path.join(EXAMPLES, 'plugins'))}).withHostMethod('get_user', () => ({ name: 'x' })).start();
      console.log('started');
      setInterval(() => {}, 1000);
    `;
    // Its temporary folders (the environment's home) go in a folder of this test's, to be found empty after.
    const tmp = tempDir('lm-kit-tmp-');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO,
      env: { ...process.env, TESTCONTAINERS_RYUK_DISABLED: 'true', LOGOMESH_INSTANCE: prefix, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      // Killed halfway: once its plugin's container exists, whether or not it is ready yet.
      let seen: string[] = [];
      for (let i = 0; i < 600 && !seen.some((r) => r.includes('(plugin)')); i++) {
        if (child.exitCode !== null) throw new Error(`the test process ended on its own:\n${out}`);
        seen = await resourcesOf(prefix);
        await sleep(100);
      }
      expect(seen.some((r) => r.includes('(plugin)')), out).toBe(true);
      expect(readdirSync(tmp).filter((f) => f.startsWith('logomesh-kit-'))).toHaveLength(1);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    let left = await resourcesOf(prefix);
    for (let i = 0; i < 120 && left.length; i++) {
      await sleep(250);
      left = await resourcesOf(prefix);
    }
    expect(left).toEqual([]);
    expect(readdirSync(tmp).filter((f) => f.startsWith('logomesh-kit-'))).toEqual([]);
    // A mount staged on the host for the container being created (as root, mount-staging.ts)
    // cannot be reached from a container: the next LogoMesh start on this TMPDIR removes it,
    // as the next environment's start does.
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      await removeStagingLeftovers(silentLogger);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(readdirSync(tmp).filter((f) => /^(lm-mounts-|logomesh-kit-)/.test(f))).toEqual([]);
    expect((await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: ['io.logomesh.reaper-of'] }) })).filter((c) => c.Labels['io.logomesh.reaper-of']!.startsWith(prefix))).toEqual([]);
  }, 300_000);

  it('the CI workflow a plugin author copies runs the unit tests with logomesh test and the integration tests with the kit', () => {
    const workflow = parse(readFileSync(path.join(EXAMPLES, 'ci', 'plugin-tests.yml'), 'utf8')) as { jobs: Record<string, { steps: { run?: string }[] }> };
    const runs = Object.values(workflow.jobs).flatMap((j) => j.steps.map((s) => s.run).filter(Boolean));
    expect(runs).toEqual(['npm ci', 'npx logomesh test plugins/greeter', 'npx vitest run']);
  });
});
