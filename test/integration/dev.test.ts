import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABEL, labelFilter } from '../../src/labels.js';
import { scaffoldPlugin } from '../../src/scaffold/create.js';
import { DevProcess } from './dev-support.js';
import { docker, instance, sleep, tempDir } from './support.js';

async function containersOf(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length;
}

interface Case {
  runtime: 'python' | 'node';
  id: string;
  instanceSuffix: string;
  /** The code file, and an edit of it that changes the greeting and logs each call. */
  file: string;
  edit: (text: string) => string;
}

const CASES: Case[] = [
  {
    runtime: 'python',
    id: 'dev-py',
    instanceSuffix: 'dev',
    file: 'main.py',
    edit: (t) => t.replace('return {"greeting": f"Hello, {name}!"}', 'print(f"greeting {name}", flush=True)\n    return {"greeting": f"Howdy, {name}!"}'),
  },
  {
    runtime: 'node',
    id: 'dev-node',
    instanceSuffix: 'dev-node',
    file: 'plugin.mjs',
    edit: (t) => t.replace('return { greeting: `Hello, ${name}!` };', 'console.log(`greeting ${name}`);\n  return { greeting: `Howdy, ${name}!` };'),
  },
];

describe.each(CASES)('logomesh dev on a $runtime plugin', ({ runtime, id, instanceSuffix, file, edit }) => {
  it('serves calls, reloads on an edit, keeps the old instance on a bad manifest, and leaves nothing on SIGINT', async () => {
    const dir = path.join(tempDir(`lm-${id}-`), id);
    scaffoldPlugin({ runtime, name: id, dir });
    const home = tempDir('lm-dev-home-');
    const inst = `${instance()}-${instanceSuffix}`;
    const dev = new DevProcess(dir, { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: inst });
    try {
      await dev.waitFor(new RegExp(`${id} started in [\\d.]+ s`), 120_000);
      // The hint follows the start line after the plugin's methods are read, so wait for it too.
      await dev.waitFor(/call it from another terminal/, 10_000);
      expect(dev.stderr).toContain(`LOGOMESH_HOME=${home} logomesh call ${id}.hello`);
      expect(await dev.call(`${id}.hello`, { name: 'Ada' })).toMatchObject({ code: 0, result: { greeting: 'Hello, Ada!' } });

      // Edit the code: the new behaviour is served after the reload.
      const code = path.join(dir, file);
      const before = readFileSync(code, 'utf8');
      const edited = edit(before);
      expect(edited).not.toBe(before);
      let from = dev.stderr.length;
      const t0 = Date.now();
      writeFileSync(code, edited);
      const reloaded = await dev.waitFor(new RegExp(`${id} reloaded in ([\\d.]+) s`), 30_000, from);
      const seen = Date.now() - t0;
      expect(await dev.call(`${id}.hello`, { name: 'Ada' })).toMatchObject({ code: 0, result: { greeting: 'Howdy, Ada!' } });
      const deadline = Date.now() + 5_000;
      while (!dev.stdout.includes(`${id} | greeting Ada`) && Date.now() < deadline) await sleep(25);
      expect(dev.stdout, 'the plugin output is streamed, prefixed').toContain(`${id} | greeting Ada`);
      console.log(`logomesh dev (${runtime}): reload reported ${reloaded[1]} s; edit to reloaded plugin ${seen} ms (debounce included)`);
      expect(Number(reloaded[1])).toBeLessThan(runtime === 'python' ? 5 : 8);

      // An invalid manifest: reported, and the running instance keeps serving.
      const manifest = path.join(dir, 'plugin.yaml');
      const good = readFileSync(manifest, 'utf8');
      from = dev.stderr.length;
      writeFileSync(manifest, good.replace(/maxMemoryMB: \d+/, 'maxMemoryMB: 8')); // below the minimum of 16
      await dev.waitFor(/the manifest is rejected; .* keeps running the previous version\n.*LM_MANIFEST_LIMIT/, 10_000, from);
      expect(await dev.call(`${id}.hello`, { name: 'Bo' })).toMatchObject({ code: 0, result: { greeting: 'Howdy, Bo!' } });
      from = dev.stderr.length;
      writeFileSync(manifest, good);
      // Back to the manifest that runs: nothing to replace.
      await dev.waitFor(/plugin\.yaml changed; the running version is this one already/, 30_000, from);
      expect(await dev.call(`${id}.hello`, {})).toMatchObject({ code: 0, result: { greeting: 'Howdy, world!' } });
    } finally {
      expect(await dev.stop()).toBe(0);
    }
    expect(dev.stderr).toContain('logomesh dev: stopped');
    expect(dev.instance).toMatch(new RegExp(`^${inst}-dev-[0-9a-f]{12}$`));
    expect(await containersOf(dev.instance)).toBe(0);
    expect(existsSync(path.join(home, 'control.sock'))).toBe(false);
  }, 240_000);
});

describe('logomesh dev on a go plugin', () => {
  it('rebuilds on an edit, and keeps the running instance when the code does not compile', async () => {
    const id = 'dev-go';
    const dir = path.join(tempDir(`lm-${id}-`), id);
    scaffoldPlugin({ runtime: 'go', name: id, dir });
    const inst = `${instance()}-dev-go`;
    const dev = new DevProcess(dir, { LOGOMESH_HOME: tempDir('lm-dev-home-'), LOGOMESH_INSTANCE: inst });
    const main = path.join(dir, 'main.go');
    const source = readFileSync(main, 'utf8');
    try {
      await dev.waitFor(new RegExp(`${id} started in [\\d.]+ s \\(build [\\d.]+ s, restart [\\d.]+ s\\)`), 180_000);
      expect(await dev.call(`${id}.hello`, { name: 'Ada' })).toMatchObject({ code: 0, result: { greeting: 'Hello, Ada!' } });

      let from = dev.stderr.length;
      writeFileSync(main, `${source}\nfunc broken() int { return "not a number" }\n`);
      await dev.waitFor(/the build of dev-go failed; the previous version keeps running\nLM_IMAGE_BUILD: [^]*main\.go:\d+:\d+: cannot use "not a number"/, 120_000, from);
      expect(await dev.call(`${id}.hello`, { name: 'Ada' })).toMatchObject({ code: 0, result: { greeting: 'Hello, Ada!' } });

      from = dev.stderr.length;
      writeFileSync(main, source.replace('"Hello, "', '"Howdy, "'));
      const reloaded = await dev.waitFor(new RegExp(`${id} reloaded in ([\\d.]+) s \\(build ([\\d.]+) s`), 120_000, from);
      console.log(`logomesh dev (go): reload reported ${reloaded[1]} s, of which the build ${reloaded[2]} s`);
      expect(await dev.call(`${id}.hello`, { name: 'Ada' })).toMatchObject({ code: 0, result: { greeting: 'Howdy, Ada!' } });
    } finally {
      expect(await dev.stop()).toBe(0);
      const engine = await docker();
      const images = await engine.listImages({ filters: JSON.stringify({ label: [`${LABEL.role}=plugin-image`, `${LABEL.plugin}=${id}`] }) });
      for (const img of images) await engine.getImage(img.Id).remove({ force: true }).catch(() => undefined);
    }
    expect(await containersOf(dev.instance)).toBe(0);
  }, 400_000);
});
