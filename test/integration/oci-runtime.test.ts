import { appendFileSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABEL, labelFilter } from '../../src/labels.js';
import { loadPolicy } from '../../src/policy/policy.js';
import { engineRuntimes } from '../../src/sandbox/oci-runtime.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, runCaptured, tempDir } from './support.js';

/**
 * The OCI runtime per plugin, against the real engine. Provisioning registers gVisor's
 * runsc (without network): a plugin at isolation level 3 runs under it, one with network is
 * refused on it, and a runtime the engine lacks is refused with the runtimes it has; no
 * container is created for a refused plugin.
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

  it('the engine here has runc, and runsc as provisioning registers it (no network inside)', async () => {
    const info = (await (await docker()).info()) as { Runtimes: Record<string, { runtimeArgs?: string[] }> };
    expect(engineRuntimes(info)).toEqual(expect.arrayContaining(['runc', 'runsc']));
    expect(info.Runtimes.runsc?.runtimeArgs).toContain('--network=none');
  });

  it("a runtime the engine lacks (the policy's isolation.runtime): LM_RUNTIME_ISOLATION naming it and listing the others", async () => {
    const p = policy('isolation: { runtime: kata-runtime }\n');
    const err = await runCaptured(pluginDir(), { policy: p }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LM_RUNTIME_ISOLATION', details: { runtime: 'kata-runtime', rule: `${p.file} /isolation/runtime` } });
    expect((err as { details: { available: string[] } }).details.available).toEqual(expect.arrayContaining(['runc', 'runsc']));
    expect((err as Error).message).toMatch(/'kata-runtime'.*available: .*runc/);
    await noContainers();
  });

  it("isolation level 3 with no policy runs the plugin under gVisor: the kernel it sees is gVisor's, not the host's", async () => {
    const d = await docker();
    let runtime: string | undefined;
    const dir = pluginDir('security: { isolationLevel: 3 }\n');
    writeFileSync(path.join(dir, 'main.py'), 'import os\nprint("kernel", os.uname().release)\n');
    const run = await runCaptured(dir, { onCreated: async (c) => void (runtime = (await d.getContainer(c.id).inspect()).HostConfig.Runtime) });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(runtime).toBe('runsc');
    const seen = /kernel (\S+)/.exec(run.stdout)?.[1];
    expect(seen).toBeDefined();
    expect(seen).not.toBe(os.release());
    await noContainers();
  });

  it('a plugin with network capabilities is refused on runsc registered with --network=none', async () => {
    const extra = 'security: { isolationLevel: 3 }\ncapabilities:\n  - { id: web, scope: network, hosts: ["example.test:443"] }\nresources: { maxNetworkConnections: 1 }\n';
    const err = await runCaptured(pluginDir(extra)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LM_RUNTIME_ISOLATION', details: { runtime: 'runsc', found: "'runsc' with --network=none" } });
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

describe('a plugin under gVisor, run by a controller', () => {
  it('says hello over its hub socket, serves calls, and a mount inside gVisor fails with EPERM (the user-space kernel refuses it; no host kernel record)', async () => {
    const root = tempDir('lm-gvisor-');
    const dir = path.join(root, 'under-gvisor');
    mkdirSync(dir);
    copyFileSync(path.join(REPO, 'test', 'fixtures', 'controller', 'syscall-attacker.py'), path.join(dir, 'main.py'));
    writeFileSync(
      path.join(dir, 'plugin.yaml'),
      'id: under-gvisor\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\nsecurity: { isolationLevel: 3 }\ncoordination:\n  exposesMethods: [echo, attack_self, attack_child]\n',
    );
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-gvisor` });
    await using host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000 });
    host.loadDirectory(dir);
    await host.startAll();
    const d = await docker();
    expect((await d.getContainer(host.status('under-gvisor').containerId!).inspect()).HostConfig.Runtime).toBe('runsc');
    expect(await host.call('under-gvisor', 'echo', { via: 'gvisor' }, 5_000)).toEqual({ via: 'gvisor' });
    expect(await host.call('under-gvisor', 'attack_self', { syscall: 'mount' }, 5_000)).toEqual({ survived: true, errno: 1 });
    expect(host.status('under-gvisor').state).toBe('ready');
  });
});
