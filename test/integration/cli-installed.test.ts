import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { labelFilter } from '../../src/labels.js';
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
});
