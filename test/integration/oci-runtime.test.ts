import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABEL, labelFilter } from '../../src/labels.js';
import { loadPolicy } from '../../src/policy/policy.js';
import { engineRuntimes } from '../../src/sandbox/oci-runtime.js';
import { docker, instance, runCaptured, tempDir } from './support.js';

/**
 * The OCI runtime per plugin, against the real engine. gVisor (runsc) is not installed
 * here: a plugin that needs it is refused with the runtimes the engine has, and no
 * container is created.
 */
describe('OCI runtime per plugin', () => {
  const pluginDir = (extra = '') => {
    // A folder of its own: the mount is of the plugin folder, not of the private temp folder.
    const dir = path.join(tempDir('lm-oci-runtime-'), 'oci-probe');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'main.py'), 'print("ran")\n');
    writeFileSync(path.join(dir, 'plugin.yaml'), `id: oci-probe\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n`);
    if (extra) appendFileSync(path.join(dir, 'plugin.yaml'), extra);
    return dir;
  };
  const policy = (text: string) => {
    const file = path.join(tempDir('lm-oci-policy-'), 'policy.yaml');
    writeFileSync(file, text);
    return loadPolicy(file);
  };
  const noContainers = async () => {
    const d = await docker();
    const left = await d.listContainers({ all: true, filters: JSON.stringify({ label: [...labelFilter(instance()).label, `${LABEL.plugin}=oci-probe`] }) });
    expect(left).toEqual([]);
  };

  it('the engine here has runc and not runsc', async () => {
    const names = engineRuntimes(await (await docker()).info());
    expect(names).toContain('runc');
    expect(names).not.toContain('runsc');
  });

  it("the policy's isolation.runtime runsc: LM_RUNTIME_ISOLATION naming runsc and listing runc", async () => {
    const p = policy('isolation: { runtime: runsc }\n');
    const err = await runCaptured(pluginDir(), { policy: p }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LM_RUNTIME_ISOLATION', details: { runtime: 'runsc', rule: `${p.file} /isolation/runtime` } });
    expect((err as { details: { available: string[] } }).details.available).toContain('runc');
    expect((err as Error).message).toMatch(/'runsc'.*available: .*runc/);
    await noContainers();
  });

  it('isolation level 3 with no policy asks for runsc and is refused the same way', async () => {
    const err = await runCaptured(pluginDir('security: { isolationLevel: 3 }\n')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LM_RUNTIME_ISOLATION', details: { runtime: 'runsc' } });
    await noContainers();
  });

  it('a runtime the engine has (runc, named explicitly) runs the plugin with it', async () => {
    const d = await docker();
    let runtime: string | undefined;
    const run = await runCaptured(pluginDir(), {
      policy: policy('isolation: { runtime: runc }\n'),
      onCreated: async (c) => {
        runtime = (await d.getContainer(c.id).inspect()).HostConfig.Runtime;
      },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('ran');
    expect(runtime).toBe('runc');
  });
});
