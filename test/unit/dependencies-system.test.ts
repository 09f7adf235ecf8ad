import type { ContainerCreateOptions } from 'dockerode';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Docker } from '../../src/engine/docker.js';
import {
  CHECK_SCRIPT,
  checkSystemDependencies,
  demuxLogs,
  forgetSystemChecks,
  normaliseNames,
  parseCheckOutput,
  systemCheckKey,
  systemCheckSpec,
  type CheckedImage,
} from '../../src/images/system-check.js';
import { LogoMeshError } from '../../src/errors.js';
import { LABEL, ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { PLUGIN_USER } from '../../src/runtimes/runtime.js';
import { MAIN_PY, PluginFolders } from './support/plugin-folder.js';

const folders = new PluginFolders();
const cacheDirs: string[] = [];
afterAll(() => {
  folders.removeAll();
  for (const d of cacheDirs) rmSync(d, { recursive: true, force: true });
});

function plugin(system: string[]): LoadedManifest {
  const manifest = [
    'id: sys-demo',
    'version: 1.0.0',
    'runtime: python',
    'entrypoint: main.py',
    'dependencies:',
    `  system:${system.length ? '' : ' []'}`,
    ...system.map((s) => `    - ${JSON.stringify(s)}`),
    '',
  ].join('\n');
  return loadManifest(folders.create({ 'plugin.yaml': manifest, 'main.py': MAIN_PY }));
}

/** The check script run by the host's /bin/sh, as the check container runs it. */
function runScript(names: string[]): string {
  return execFileSync('/bin/sh', ['-c', CHECK_SCRIPT, 'logomesh-system-check', ...names], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } });
}

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** A stand-in engine whose images "have" the given names; it records every container. */
function fakeEngine(installed: ReadonlySet<string>) {
  const created: ContainerCreateOptions[] = [];
  let removed = 0;
  const docker = {
    createContainer: async (spec: ContainerCreateOptions) => {
      created.push(spec);
      const names = spec.Cmd ?? [];
      const out = names.map((n) => (installed.has(n) ? `command\t${n}\t/usr/bin/${n}\n` : `missing\t${n}\n`)).join('');
      return {
        start: async () => undefined,
        wait: async () => ({ StatusCode: 0 }),
        logs: async () => frame(1, out),
        remove: async () => {
          removed++;
        },
      };
    },
  } as unknown as Docker;
  return { docker, created, removed: () => removed };
}

const IMAGE: CheckedImage = { tag: 'logomesh/runtime-python:latest', id: 'sha256:0123456789abcdef0123', role: 'the image the plugin runs in' };

describe('the check script', () => {
  it('finds installed Debian packages (with their version) and commands on PATH, and reports the rest missing', () => {
    const hasDpkg = existsSync('/usr/bin/dpkg-query');
    const names = ['sh', 'no-such-package-or-command-xyz', ...(hasDpkg ? ['dpkg'] : [])];
    const check = parseCheckOutput('img', names, runScript(names));
    expect(check.found.sh).toEqual({ kind: 'command', detail: expect.stringMatching(/^\/.*\/sh$/) });
    expect(check.missing).toEqual(['no-such-package-or-command-xyz']);
    if (hasDpkg) expect(check.found.dpkg).toEqual({ kind: 'package', detail: expect.stringMatching(/^[0-9][A-Za-z0-9.+:~_-]*$/) });
  });

  it('treats entries as data, never as shell text', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-check-'));
    cacheDirs.push(dir);
    const evil = `$(touch ${dir}/pwned)`;
    const out = runScript([evil, `;touch ${dir}/pwned2`]);
    expect(readdirSync(dir)).toEqual([]);
    expect(out).toBe(`missing\t${evil}\nmissing\t;touch ${dir}/pwned2\n`);
  });

  it('does not count a shell builtin as a command', () => {
    expect(runScript(['cd'])).toBe('missing\tcd\n');
  });
});

describe('the check container', () => {
  const labels = { ...ownerLabels('plugin', 'inst-1'), [LABEL.plugin]: 'sys-demo' };
  const spec = systemCheckSpec('sha256:abc', ['python3', 'sh'], labels);

  it('is hardened like a plugin container', () => {
    const hc = spec.HostConfig!;
    expect(spec.User).toBe(PLUGIN_USER);
    expect(spec.NetworkDisabled).toBe(true);
    expect(hc.NetworkMode).toBe('none');
    expect(hc.ReadonlyRootfs).toBe(true);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual([]);
    expect(hc.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(hc.Privileged).toBe(false);
    expect(hc.Mounts).toEqual([]);
    expect(hc.Memory).toBe(hc.MemorySwap);
    expect(hc.Memory).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(hc.PidsLimit).toBeLessThanOrEqual(64);
    expect(hc.RestartPolicy).toEqual({ Name: 'no', MaximumRetryCount: 0 });
  });

  it('checks the exact image id, passes the names as arguments after the fixed script, and carries LogoMesh labels', () => {
    expect(spec.Image).toBe('sha256:abc');
    expect(spec.Entrypoint).toEqual(['/bin/sh', '-c', CHECK_SCRIPT, 'logomesh-system-check']);
    expect(spec.Cmd).toEqual(['python3', 'sh']);
    expect(spec.Labels).toMatchObject({ [LABEL.owner]: 'logomesh', [LABEL.role]: 'plugin', [LABEL.instance]: 'inst-1', [LABEL.plugin]: 'sys-demo' });
  });
});

describe('reading the answer', () => {
  it('demultiplexes the engine log stream', () => {
    expect(demuxLogs(Buffer.concat([frame(1, 'a\n'), frame(2, 'oops'), frame(1, 'b\n')]))).toEqual({ stdout: 'a\nb\n', stderr: 'oops' });
  });

  it('refuses output that does not answer exactly the names asked', () => {
    expect(() => parseCheckOutput('img', ['a'], 'command\ta\t/a\ncommand\tb\t/b\n')).toThrow(/unexpected line/);
    expect(() => parseCheckOutput('img', ['a', 'b'], 'missing\ta\n')).toThrow(/no answer for b/);
    expect(() => parseCheckOutput('img', ['a'], 'weird\ta\n')).toThrow(LogoMeshError);
  });
});

describe('the cache key', () => {
  it('is the image id and the set of names', () => {
    expect(systemCheckKey('sha256:a', ['sh', 'python3', 'sh'])).toBe(systemCheckKey('sha256:a', ['python3', 'sh']));
    expect(systemCheckKey('sha256:b', ['python3', 'sh'])).not.toBe(systemCheckKey('sha256:a', ['python3', 'sh']));
    expect(systemCheckKey('sha256:a', ['python3'])).not.toBe(systemCheckKey('sha256:a', ['python3', 'sh']));
    expect(normaliseNames(['b', 'a', 'b'])).toEqual(['a', 'b']);
  });
});

describe('checkSystemDependencies', () => {
  let cacheDir: string;
  beforeEach(() => {
    forgetSystemChecks();
    cacheDir = mkdtempSync(path.join(os.tmpdir(), 'lm-syscache-'));
    cacheDirs.push(cacheDir);
  });

  it('runs nothing for an empty list', async () => {
    const engine = fakeEngine(new Set());
    expect(await checkSystemDependencies(engine.docker, plugin([]), IMAGE, { log: silentLogger, cacheDir })).toBeUndefined();
    expect(engine.created).toEqual([]);
  });

  it('uses one container per image and list, then memory, then the cache folder in a new process', async () => {
    const engine = fakeEngine(new Set(['python3', 'sh']));
    const loaded = plugin(['sh', 'python3']);
    const opts = { log: silentLogger, cacheDir, instance: 'inst-2' };
    expect((await checkSystemDependencies(engine.docker, loaded, IMAGE, opts))?.source).toBe('container');
    expect(engine.created).toHaveLength(1);
    expect(engine.created[0]?.Cmd).toEqual(['python3', 'sh']);
    expect(engine.created[0]?.Labels?.[LABEL.instance]).toBe('inst-2');
    expect(engine.removed()).toBe(1);
    // The same set in another order, from another plugin: still the same answer.
    expect((await checkSystemDependencies(engine.docker, plugin(['python3', 'sh', 'sh']), IMAGE, opts))?.source).toBe('memory');
    forgetSystemChecks();
    expect((await checkSystemDependencies(engine.docker, loaded, IMAGE, opts))?.source).toBe('disk');
    expect(engine.created).toHaveLength(1);
    // Another image id is another check.
    expect((await checkSystemDependencies(engine.docker, loaded, { ...IMAGE, id: 'sha256:other' }, opts))?.source).toBe('container');
    expect(engine.created).toHaveLength(2);
  });

  it('refuses a missing entry with LM_DEPENDENCY naming the plugin, the file, the pointer and the image; the refusal is cached too', async () => {
    const engine = fakeEngine(new Set(['python3']));
    const loaded = plugin(['python3', 'libnope-dev']);
    const attempt = () => checkSystemDependencies(engine.docker, loaded, IMAGE, { log: silentLogger, cacheDir: null });
    const err = (await attempt().catch((e: unknown) => e)) as LogoMeshError;
    expect(err).toBeInstanceOf(LogoMeshError);
    expect(err.code).toBe('LM_DEPENDENCY');
    expect(err.details).toMatchObject({
      plugin: 'sys-demo',
      file: loaded.file,
      path: '/dependencies/system/1',
      line: 8,
      image: IMAGE.tag,
      imageId: IMAGE.id,
      missing: ['libnope-dev'],
    });
    expect(err.message.split('\n')[0]).toBe(
      'plugin sys-demo cannot start: logomesh/runtime-python:latest (the image the plugin runs in, 0123456789ab) lacks libnope-dev from dependencies.system',
    );
    expect(err.message.split('\n')[1]).toBe(
      `${loaded.file}:8:7 LM_DEPENDENCY /dependencies/system/1: expected an installed Debian package or a command on PATH in logomesh/runtime-python:latest, found neither for "libnope-dev"`,
    );
    await expect(attempt()).rejects.toMatchObject({ code: 'LM_DEPENDENCY' });
    expect(engine.created).toHaveLength(1);
    expect(engine.removed()).toBe(1);
  });

  it('removes the container and forgets the attempt when the check itself fails', async () => {
    let removed = 0;
    const docker = {
      createContainer: async () => ({
        start: async () => undefined,
        wait: async () => ({ StatusCode: 127 }),
        logs: async () => frame(2, '/bin/sh: not found'),
        remove: async () => {
          removed++;
        },
      }),
    } as unknown as Docker;
    const loaded = plugin(['sh']);
    await expect(checkSystemDependencies(docker, loaded, IMAGE, { log: silentLogger, cacheDir })).rejects.toMatchObject({ code: 'LM_ENGINE_ERROR', message: expect.stringContaining('exited with code 127') });
    expect(removed).toBe(1);
    await expect(checkSystemDependencies(docker, loaded, IMAGE, { log: silentLogger, cacheDir })).rejects.toMatchObject({ code: 'LM_ENGINE_ERROR' });
    expect(removed).toBe(2);
    expect(readdirSync(cacheDir)).toEqual([]);
  });
});
