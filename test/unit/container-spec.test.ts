import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ContainerCreateOptions, HostConfig, MountSettings } from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { LABEL, OWNER } from '../../src/labels.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { LoadedManifest, Resources } from '../../src/manifest/types.js';
import { PLUGIN_IDS, pluginGid, pluginUid, runtimeImage } from '../../src/runtimes/index.js';
import { containerSpec, type SpecInput } from '../../src/sandbox/container-spec.js';
import { SECCOMP_DIR } from '../../src/seccomp/profiles.js';
import { dedent, folder, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

const MiB = 1024 * 1024;
const INSTANCE = 'unit-test-instance';
const python = runtimeImage('python');

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

const MANIFEST = dedent(`
  id: spec-demo
  version: 2.1.0
  runtime: python
  entrypoint: main.py
  capabilities:
    - id: inputs
      scope: filesystem
      permissions: [read]
      paths: ["data/**"]
    - id: results
      scope: filesystem
      permissions: [read, write]
      paths: ["out/**"]
  resources:
    maxMemoryMB: 96
    maxCpuPercent: 25
    maxFileHandles: 64
    maxProcesses: 32
    maxTmpMB: 8
`);

/** A python plugin with a read grant (data/) and a write grant (out/), loaded for real. */
function loadPlugin(manifest = MANIFEST): LoadedManifest {
  return loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': manifest, 'data/rows.csv': 'a,b\n', out: folder }));
}

function specFor(loaded: LoadedManifest, extra: Partial<SpecInput> = {}): ContainerCreateOptions {
  return containerSpec({ loaded, runtime: python, instance: INSTANCE, ...extra });
}

function hostConfig(spec: ContainerCreateOptions): HostConfig {
  expect(spec.HostConfig).toBeDefined();
  return spec.HostConfig ?? {};
}

function mounts(spec: ContainerCreateOptions): MountSettings[] {
  return hostConfig(spec).Mounts ?? [];
}

function envOf(spec: ContainerCreateOptions): [string, string][] {
  return (spec.Env ?? []).map((kv) => {
    const at = kv.indexOf('=');
    return [kv.slice(0, at), kv.slice(at + 1)];
  });
}

describe('containerSpec: resource limits', () => {
  const loaded = loadPlugin();
  const hc = hostConfig(specFor(loaded));

  it('sets a hard memory limit without swap', () => {
    expect(hc.Memory).toBe(96 * MiB);
    expect(hc.MemorySwap).toBe(hc.Memory);
  });

  it('sets a CPU quota over a 100 ms period', () => {
    expect(hc.CpuPeriod).toBe(100_000);
    expect(hc.CpuQuota).toBe(25 * 1000);
  });

  it('weighs the plugin by its CPU percent under contention (CPU shares, CIS 5.12)', () => {
    // 25% of a core: a quarter of a default container's 1024.
    expect(hc.CpuShares).toBe(256);
  });

  it('limits processes and open files', () => {
    expect(hc.PidsLimit).toBe(32);
    expect(hc.Ulimits).toEqual([{ Name: 'nofile', Soft: 64, Hard: 64 }]);
  });

  it('gives a read-only root with a size-limited /tmp', () => {
    expect(hc.ReadonlyRootfs).toBe(true);
    expect(Object.keys(hc.Tmpfs ?? {})).toEqual(['/tmp']);
    expect((hc.Tmpfs?.['/tmp'] ?? '').split(',')).toContain('size=8m');
  });

  // A handful of combinations, from the smallest limits the schema allows to the largest.
  const combos: Resources[] = [
    { maxMemoryMB: 16, maxCpuPercent: 1, maxFileHandles: 16, maxNetworkConnections: 0, maxProcesses: 4, maxTmpMB: 1 },
    { maxMemoryMB: 128, maxCpuPercent: 50, maxFileHandles: 256, maxNetworkConnections: 0, maxProcesses: 64, maxTmpMB: 16 },
    { maxMemoryMB: 100, maxCpuPercent: 33, maxFileHandles: 50, maxNetworkConnections: 4, maxProcesses: 7, maxTmpMB: 3 },
    { maxMemoryMB: 2048, maxCpuPercent: 150, maxFileHandles: 4096, maxNetworkConnections: 16, maxProcesses: 512, maxTmpMB: 256 },
    { maxMemoryMB: 65536, maxCpuPercent: 800, maxFileHandles: 16384, maxNetworkConnections: 4096, maxProcesses: 4096, maxTmpMB: 4096 },
  ];
  it.each(combos)('translates $maxMemoryMB MB / $maxCpuPercent% / $maxFileHandles files / $maxProcesses pids / $maxTmpMB MB tmp', (r) => {
    const manifest = `id: combo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\nresources: ${JSON.stringify(r)}\n`;
    const spec = specFor(loadPlugin(manifest));
    const h = hostConfig(spec);

    expect(h).toMatchObject({
      Memory: r.maxMemoryMB * MiB,
      MemorySwap: r.maxMemoryMB * MiB,
      CpuPeriod: 100_000,
      CpuQuota: r.maxCpuPercent * 1000,
      CpuShares: Math.max(2, Math.round((r.maxCpuPercent / 100) * 1024)),
      PidsLimit: r.maxProcesses,
      Ulimits: [{ Name: 'nofile', Soft: r.maxFileHandles, Hard: r.maxFileHandles }],
      ReadonlyRootfs: true,
      Privileged: false,
      NetworkMode: 'none',
    });
    expect(Number.isInteger(h.CpuQuota)).toBe(true);
    expect((h.Tmpfs?.['/tmp'] ?? '').split(',')).toContain(`size=${r.maxTmpMB}m`);
  });
});

describe('containerSpec: privileges and isolation', () => {
  const spec = specFor(loadPlugin());
  const hc = hostConfig(spec);

  it('drops every capability and adds none', () => {
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd ?? []).toEqual([]);
    expect(hc.Privileged).toBe(false);
  });

  it('forbids new privileges and never disables a confinement', () => {
    expect(hc.SecurityOpt).toContain('no-new-privileges:true');
    for (const opt of hc.SecurityOpt ?? []) {
      expect(opt).not.toMatch(/^(seccomp|apparmor)[=:]unconfined$/);
      expect(opt).not.toMatch(/^label[=:]disable$/);
    }
  });

  it("loads LogoMesh's no-network seccomp profile inline, not the engine's default", () => {
    const seccomp = (hc.SecurityOpt ?? []).filter((o: string) => o.startsWith('seccomp'));
    expect(seccomp).toHaveLength(1);
    const [opt = ''] = seccomp;
    expect(opt.startsWith('seccomp=')).toBe(true);
    const profile = JSON.parse(opt.slice('seccomp='.length)) as { defaultAction: string; syscalls: { names: string[] }[] };
    expect(profile).toEqual(JSON.parse(readFileSync(path.join(SECCOMP_DIR, 'plugin-no-network.json'), 'utf8')));
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
    // Compact: the whole profile travels in the create request and shows in `docker inspect`.
    expect(opt).not.toContain('\n');
  });

  it('takes a seccomp profile given as JSON text, and refuses anything else', () => {
    const loaded = loadPlugin();
    const custom = '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}';
    expect(hostConfig(specFor(loaded, { seccompProfile: custom })).SecurityOpt).toEqual(['no-new-privileges:true', `seccomp=${custom}`]);
    for (const seccompProfile of ['unconfined', '/etc/docker/seccomp.json', '']) {
      expect(() => specFor(loaded, { seccompProfile })).toThrow(expect.objectContaining({ code: 'LM_SECCOMP_PROFILE' }));
    }
  });

  it("runs as the plugin's own user and group, non-root, with no group shared with other plugins", () => {
    const user = spec.User ?? '';
    const [uid = '', gid = ''] = user.split(':');
    expect(user).toBe(`${pluginUid(INSTANCE, 'spec-demo')}:${pluginGid(INSTANCE, 'spec-demo')}`);
    expect(Number(uid)).toBeGreaterThanOrEqual(PLUGIN_IDS.from);
    expect(Number(gid)).toBeLessThan(PLUGIN_IDS.to);
    expect(hc.GroupAdd).toEqual([]);
    // Another plugin of the same controller gets another user; a one-shot run's user is the same in every run.
    expect(pluginUid(INSTANCE, 'other')).not.toBe(pluginUid(INSTANCE, 'spec-demo'));
    expect(pluginUid('run-123-0a0b0c0d', 'spec-demo')).toBe(pluginUid('run-456-deadbeef', 'spec-demo'));
    expect(pluginGid('run-123-0a0b0c0d', 'spec-demo')).not.toBe(pluginGid('run-456-deadbeef', 'spec-demo'));
  });

  it('has no network and shares no host namespace', () => {
    expect(hc.NetworkMode).toBe('none');
    // No engine network sandbox either: runc makes the empty namespace (loopback only).
    expect(spec.NetworkDisabled).toBe(true);
    for (const mode of [hc.NetworkMode, hc.PidMode, hc.IpcMode, hc.UTSMode, hc.UsernsMode]) {
      expect(mode ?? '').not.toBe('host');
    }
  });

  it('passes no device through', () => {
    expect(hc.Devices ?? []).toEqual([]);
    expect(hc.DeviceRequests ?? []).toEqual([]);
    expect(hc.DeviceCgroupRules ?? []).toEqual([]);
  });

  it('never mounts the Docker socket, and uses no Binds or Volumes', () => {
    for (const m of mounts(spec)) {
      expect(m.Source).not.toMatch(/docker\.sock$/);
      expect(m.Type).toBe('bind');
    }
    expect(hc.Binds ?? []).toEqual([]);
    expect(hc.VolumesFrom ?? []).toEqual([]);
  });
});

describe('containerSpec: mounts', () => {
  const loaded = loadPlugin();
  const all = mounts(specFor(loaded));
  const at = (target: string) => all.filter((m) => m.Target === target);
  const hostPathOf = (relative: string) => loaded.grantedPaths.find((g) => g.relative === relative)?.hostPath;

  it('mounts the plugin folder read-only at /plugin', () => {
    expect(at('/plugin')).toEqual([{ Type: 'bind', Source: loaded.pluginDir, Target: '/plugin', ReadOnly: true }]);
  });

  it('mounts a read grant read-only and a write grant writable, at /plugin/<relative>', () => {
    expect(at('/plugin/data')).toEqual([{ Type: 'bind', Source: hostPathOf('data'), Target: '/plugin/data', ReadOnly: true }]);
    expect(at('/plugin/out')).toEqual([{ Type: 'bind', Source: hostPathOf('out'), Target: '/plugin/out', ReadOnly: false }]);
    expect(all).toHaveLength(3);
  });

  it('mounts nothing outside /plugin', () => {
    for (const m of all) expect(m.Target === '/plugin' || m.Target.startsWith('/plugin/')).toBe(true);
  });

  it('takes each source the caller staged, by target; the rest keep their host path', () => {
    const staged = mounts(specFor(loaded, { mountSources: { '/plugin': '/tmp/lm-mounts-1-x/0', '/plugin/out': '/tmp/lm-mounts-1-x/2' } }));
    expect(staged.map((m) => [m.Target, m.Source, m.ReadOnly])).toEqual([
      ['/plugin', '/tmp/lm-mounts-1-x/0', true],
      ['/plugin/data', hostPathOf('data'), true],
      ['/plugin/out', '/tmp/lm-mounts-1-x/2', false],
    ]);
  });

  it('adds no second mount for a read grant of the whole plugin folder', () => {
    const whole = MANIFEST.replace('paths: ["data/**"]', 'paths: ["./**"]');
    const targets = mounts(specFor(loadPlugin(whole))).map((m) => m.Target);
    expect(targets).toEqual(['/plugin', '/plugin/out']);
  });
});

describe('containerSpec: identity and environment', () => {
  const loaded = loadPlugin();

  it('labels the container with owner, plugin id, manifest hash and instance', () => {
    expect(specFor(loaded).Labels).toMatchObject({
      [LABEL.owner]: OWNER,
      [LABEL.plugin]: 'spec-demo',
      [LABEL.manifestHash]: loaded.hash,
      [LABEL.instance]: INSTANCE,
    });
    expect(OWNER).toBe('logomesh');
  });

  it('starts the entrypoint from /plugin with the runtime image', () => {
    const spec = specFor(loaded);
    expect(spec.Image).toBe(python.tag);
    expect(spec.Cmd).toEqual(python.command('main.py'));
    expect(spec.WorkingDir).toBe('/plugin');
  });

  it('does not let extra env override the LOGOMESH_* variables it sets', () => {
    const spec = specFor(loaded, {
      env: { LOGOMESH_PLUGIN_ID: 'someone-else', LOGOMESH_PLUGIN_VERSION: '9.9.9', LOGOMESH_PLUGIN_DIR: '/', HUB_SOCKET: '/run/hub.sock' },
    });
    const env = envOf(spec);
    const keys = env.map(([k]) => k);

    expect(new Set(keys).size).toBe(keys.length);
    expect(env).toContainEqual(['LOGOMESH_PLUGIN_ID', 'spec-demo']);
    expect(env).toContainEqual(['LOGOMESH_PLUGIN_VERSION', '2.1.0']);
    expect(env).toContainEqual(['LOGOMESH_PLUGIN_DIR', '/plugin']);
    expect(env).toContainEqual(['HUB_SOCKET', '/run/hub.sock']);
  });

  it('passes the container name through only when given', () => {
    expect(specFor(loaded)).not.toHaveProperty('name');
    expect(specFor(loaded, { name: 'logomesh-spec-demo' }).name).toBe('logomesh-spec-demo');
  });
});

describe('containerSpec is pure', () => {
  it('gives deep-equal specs for the same input, and does not share mutable parts', () => {
    const input: SpecInput = { loaded: loadPlugin(), runtime: python, instance: INSTANCE, env: { A: '1' } };
    const first = containerSpec(input);
    const second = containerSpec(input);

    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    expect(second.HostConfig?.Mounts).not.toBe(first.HostConfig?.Mounts);
    expect(input.env).toEqual({ A: '1' });
  });
});
