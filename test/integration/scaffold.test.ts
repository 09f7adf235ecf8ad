import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLogoMeshError } from '../../src/errors.js';
import { LABEL, labelFilter } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import type { Runtime } from '../../src/manifest/types.js';
import { docker, instance, tempDir, runCli, type CliExit } from './support.js';

/** The real CLI, as a child process; killed if it runs past timeoutMs. */
function logomesh(args: string[], env: Record<string, string>, timeoutMs: number): Promise<CliExit> {
  return runCli(args, { env, timeoutMs });
}

/** What each runtime's test command prints for a passing test of the fake hub. */
const PASSED: Record<Runtime, RegExp> = {
  python: /test_hello_through_a_fake_hub .* \.\.\. ok/,
  node: /✔ hello through a fake hub/,
  go: /--- PASS: TestHelloThroughAFakeHub/,
  rust: /test tests::hello_through_a_fake_hub \.\.\. ok/,
};

const RUNTIMES: Runtime[] = ['python', 'node', 'go', 'rust'];
const ids = RUNTIMES.map((r) => `scaffold-${r}`);

afterAll(async () => {
  // The Go and Rust plugins' images: built for these ids only.
  const engine = await docker();
  for (const id of ids) {
    const images = await engine.listImages({ filters: JSON.stringify({ label: [`${LABEL.role}=plugin-image`, `${LABEL.plugin}=${id}`] }) });
    for (const img of images) await engine.getImage(img.Id).remove({ force: true }).catch(() => undefined);
  }
}, 60_000);

describe.each(RUNTIMES)('a %s plugin made by logomesh create', (runtime) => {
  const id = `scaffold-${runtime}`;
  const dir = path.join(tempDir(`lm-${id}-`), id);
  const inst = `${instance()}-${id}`;

  it('is created, with the next commands printed', async () => {
    const r = await logomesh(['create', runtime, id, dir], {}, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`created plugin ${id} (${runtime}) in ${dir}`);
    expect(r.stdout).toContain(`logomesh dev ${dir}`);
    // Refused the second time: the folder is no longer empty.
    const again = await logomesh(['create', runtime, id, dir], {}, 30_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^LM_SCAFFOLD_EXISTS: /m);
  });

  it('passes its own tests with logomesh test', async () => {
    const t0 = Date.now();
    const r = await logomesh(['test', dir], { LOGOMESH_INSTANCE: inst }, 240_000);
    const output = r.stdout + r.stderr;
    expect(r.code, output).toBe(0);
    expect(output).toMatch(PASSED[runtime]);
    expect(output).toContain(`logomesh test: ${id} passed in`);
    console.log(`logomesh test (${runtime}): exit 0 in ${Date.now() - t0} ms`);
  }, 300_000);

  it('runs under a Controller and answers hello', async () => {
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${inst}-host` });
    const host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000 });
    try {
      host.loadDirectory(dir);
      await host.startAll();
      expect(host.status(id).methods).toEqual(['hello']);
      expect(await host.call(id, 'hello', { name: 'Ada' }, 5_000)).toEqual({ greeting: 'Hello, Ada!' });
      expect(await host.call(id, 'hello', {}, 5_000)).toEqual({ greeting: 'Hello, world!' });
      const refused = await host.call(id, 'hello', { name: 42 }, 5_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isLogoMeshError(refused) && refused.code).toBe('LM_INVALID_ARGUMENT');
    } finally {
      await host.close();
    }
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(`${inst}-host`)) });
    expect(left).toEqual([]);
  }, 300_000);
});
