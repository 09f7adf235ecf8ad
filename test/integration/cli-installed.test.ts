import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { LABEL, labelFilter } from '../../src/labels.js';
import { copyFixture, docker, instance, REPO } from './support.js';

const run = promisify(execFile);

/**
 * The command as users run it: bin/logomesh.js, which loads the bundled CLI of `npm run build`
 * (dist/cli-bundle/). The other CLI tests run the sources; this one runs what is installed.
 */
describe('the installed logomesh command', () => {
  beforeAll(async () => {
    // The bundle of the compiled modules in dist/ (compiled by `npm install` or `npm run build`).
    await run('npm', ['run', 'build:cli'], { cwd: REPO, timeout: 120_000 });
  }, 150_000);

  it('runs a plugin to completion from the bundle, and leaves nothing behind', async () => {
    expect(existsSync(path.join(REPO, 'dist', 'cli-bundle', 'entry.js'))).toBe(true);
    const env = { ...process.env, LOGOMESH_INSTANCE: instance(), LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_POLICY: '' };
    for (const entry of ['bin/logomesh.js', 'dist/cli-bundle/entry.js']) {
      const r = await run(process.execPath, [path.join(REPO, entry), 'run', copyFixture('hello-python')], { cwd: REPO, env, timeout: 120_000 });
      expect(r.stdout).toContain('hello from hello-python');
    }
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(instance())) });
    expect(left.filter((c) => c.Labels['io.logomesh.plugin'] === 'hello-python')).toEqual([]);
  });

  it('reads the files it needs from the package (seccomp profiles, templates, the schema) and reports errors with their codes', async () => {
    const env = { ...process.env, LOGOMESH_POLICY: '' };
    const v = await run(process.execPath, [path.join(REPO, 'bin/logomesh.js'), 'validate', path.join(REPO, 'manifests', 'thoughts')], { cwd: REPO, env });
    expect(v.stdout).toMatch(/^ok /);
    const bad = await run(process.execPath, [path.join(REPO, 'bin/logomesh.js'), 'call', 'nope'], { cwd: REPO, env }).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toMatch(/^LM_USAGE/m);
  });

  it("runs `run` from its own bundle with V8's code cache beside it (written once, then used), with the same exit codes and Ctrl-C", async () => {
    const bin = path.join(REPO, 'bin/logomesh.js');
    const cache = path.join(REPO, 'dist', 'cli-bundle', 'run.cjs.v8-cache');
    const env = { ...process.env, LOGOMESH_INSTANCE: instance(), LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_POLICY: '' };
    rmSync(cache, { force: true });
    const first = await run(process.execPath, [bin, 'run', copyFixture('hello-python')], { cwd: REPO, env, timeout: 120_000 });
    expect(first.stdout).toContain('hello from hello-python');
    const written = readFileSync(cache);
    expect(written.subarray(0, 20).toString()).toBe('logomesh-code-cache ');
    const second = await run(process.execPath, [bin, 'run', copyFixture('hello-python')], { cwd: REPO, env, timeout: 120_000 });
    expect(second.stdout).toContain('hello from hello-python');
    expect(readFileSync(cache).equals(written)).toBe(true); // accepted: not written again

    const usage = await run(process.execPath, [bin, 'run'], { cwd: REPO, env }).catch((e: { code: number; stderr: string }) => e);
    expect(usage).toMatchObject({ code: 2 });
    expect((usage as { stderr: string }).stderr).toMatch(/^LM_USAGE: run needs at least one plugin folder/);
    const missing = await run(process.execPath, [bin, 'run', path.join(REPO, 'no-such-plugin')], { cwd: REPO, env }).catch((e: { code: number; stderr: string }) => e);
    expect(missing).toMatchObject({ code: 1 });
    expect((missing as { stderr: string }).stderr).toMatch(/^LM_MANIFEST_NOT_FOUND/);

    // Ctrl-C once the plugin runs: the container is removed and the command exits 130. An
    // instance of its own: cli-run.test.ts runs sleepers of this test run's at the same time.
    const own = `${instance()}-installed`;
    const child = spawn(process.execPath, [bin, 'run', copyFixture('sleeper')], { cwd: REPO, env: { ...env, LOGOMESH_INSTANCE: own }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      const before = stdout;
      stdout += c.toString();
      if (!before.includes('sleeper up') && stdout.includes('sleeper up')) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(stderr).toContain('LM_INTERRUPTED: plugin sleeper was stopped by SIGINT; its container was removed');
    const filters = labelFilter(own);
    filters.label.push(`${LABEL.plugin}=sleeper`);
    expect(await (await docker()).listContainers({ all: true, filters: JSON.stringify(filters) })).toEqual([]);
  });
});
