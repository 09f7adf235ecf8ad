import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/index.js';
import { dedent, folder, MAIN_PY, PluginFolders, symlink } from './support/plugin-folder.js';

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

/** The manifest example of the product spec, verbatim. */
const SPEC_EXAMPLE_JSON = dedent(`
  {
    "$schema": "http://logomesh.local/schemas/plugin-manifest-v2.json",
    "id": "example-plugin",
    "version": "1.0.0",
    "runtime": "python",
    "entrypoint": "main.py",
    "capabilities": [
      {
        "id": "filesystem-read",
        "scope": "filesystem",
        "permissions": ["read"],
        "paths": ["./data/**"]
      }
    ],
    "resources": {
      "maxMemoryMB": 100,
      "maxCpuPercent": 25,
      "maxFileHandles": 50
    },
    "dependencies": {
      "system": ["python3", "pip"],
      "plugins": ["data-processor"],
      "packages": {
        "python": ["numpy", "pandas"],
        "npm": []
      }
    },
    "coordination": {
      "exposesMethods": ["process_data", "analyze_results"],
      "consumesMethods": ["get_thoughts", "update_metadata"],
      "sharedMemory": true,
      "messaging": true
    }
  }
`);

/** The same manifest in YAML, with a network capability and every resource named. */
const FULL_YAML = dedent(`
  id: example-plugin            # [a-z0-9-], unique
  version: 1.0.0                # semver
  runtime: python               # python | node | go | rust
  entrypoint: main.py
  capabilities:
    - id: filesystem-read
      scope: filesystem         # filesystem | network | memory | system | ui
      permissions: [read]       # read | write
      paths: ["./data/**"]      # relative to the plugin folder unless granted otherwise
    - id: results
      scope: filesystem
      permissions: [read, write]
      paths: ["out/**"]
    - id: net
      scope: network
      hosts: ["api.example.com:443", "*.example.org:443"]
  resources: { maxMemoryMB: 100, maxCpuPercent: 25, maxFileHandles: 50, maxNetworkConnections: 4, maxProcesses: 32, maxTmpMB: 8 }
  dependencies:
    system: [python3]
    plugins: [data-processor]
    packages: { python: [numpy], npm: [] }
  coordination:
    exposesMethods: [process_data, analyze_results]
    consumesMethods: [get_thoughts, data-processor.update_metadata]
    sharedMemory: true
    messaging: true
`);

const MINIMAL = 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n';

const HEALTH_DEFAULTS = { intervalMs: 5000, timeoutMs: 3000 };
const RESTART_DEFAULTS = { policy: 'on-failure', maxRetries: 5, backoffMs: 500, maxBackoffMs: 30000, standby: false };

describe('loadManifest accepts a valid manifest', () => {
  it('loads the spec example (JSON) with every field, filling only the missing defaults', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.json': SPEC_EXAMPLE_JSON, data: folder });
    const loaded = loadManifest(dir);

    const spec = JSON.parse(SPEC_EXAMPLE_JSON) as { coordination: object };
    expect(loaded.manifest).toEqual({
      ...spec,
      coordination: { ...spec.coordination, publishes: [], subscribes: [] },
      resources: { maxMemoryMB: 100, maxCpuPercent: 25, maxFileHandles: 50, maxNetworkConnections: 0, maxProcesses: 64, maxTmpMB: 16 },
      security: { syscalls: [], isolationLevel: 1 },
      health: HEALTH_DEFAULTS,
      restart: RESTART_DEFAULTS,
      monitoring: { alerts: { hysteresisPercent: 10 }, killOnExceed: {} },
    });
    expect(loaded.file).toBe(path.join(dir, 'plugin.json'));
    expect(loaded.pluginDir).toBe(realpathSync(dir));
    expect(loaded.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('loads the full YAML form, comments and flow mappings included', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': FULL_YAML, data: folder, out: folder });
    const { manifest } = loadManifest(dir);

    expect(manifest.resources).toEqual({ maxMemoryMB: 100, maxCpuPercent: 25, maxFileHandles: 50, maxNetworkConnections: 4, maxProcesses: 32, maxTmpMB: 8 });
    expect(manifest.capabilities.map((c) => c.id)).toEqual(['filesystem-read', 'results', 'net']);
    expect(manifest.capabilities[2]?.hosts).toEqual(['api.example.com:443', '*.example.org:443']);
    expect(manifest.dependencies).toEqual({ system: ['python3'], plugins: ['data-processor'], packages: { python: ['numpy'], npm: [] } });
    expect(manifest.coordination.consumesMethods).toEqual(['get_thoughts', 'data-processor.update_metadata']);
  });

  it('fills every default of the schema into a minimal manifest', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MINIMAL });
    expect(loadManifest(dir).manifest).toEqual({
      id: 'demo',
      version: '1.0.0',
      runtime: 'python',
      entrypoint: 'main.py',
      capabilities: [],
      resources: { maxMemoryMB: 128, maxCpuPercent: 50, maxFileHandles: 256, maxNetworkConnections: 0, maxProcesses: 64, maxTmpMB: 16 },
      security: { syscalls: [], isolationLevel: 1 },
      dependencies: { system: [], plugins: [], packages: {} },
      coordination: { exposesMethods: [], consumesMethods: [], sharedMemory: false, messaging: false, publishes: [], subscribes: [] },
      health: HEALTH_DEFAULTS,
      restart: RESTART_DEFAULTS,
      monitoring: { alerts: { hysteresisPercent: 10 }, killOnExceed: {} },
    });
  });

  it('fills the remaining resource defaults beside the ones given', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MINIMAL + 'resources:\n  maxMemoryMB: 64\n' });
    expect(loadManifest(dir).manifest.resources).toEqual({
      maxMemoryMB: 64,
      maxCpuPercent: 50,
      maxFileHandles: 256,
      maxNetworkConnections: 0,
      maxProcesses: 64,
      maxTmpMB: 16,
    });
  });

  it('returns a deeply frozen result', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': FULL_YAML, data: folder, out: folder });
    const loaded = loadManifest(dir);

    const unfrozen = mutableParts(loaded, '');
    expect(unfrozen).toEqual([]);
    expect(() => {
      (loaded.manifest.resources as { maxMemoryMB: number }).maxMemoryMB = 65536;
    }).toThrow(TypeError);
    expect(() => (loaded.manifest.capabilities as unknown[]).push({})).toThrow(TypeError);
    expect(loaded.manifest.resources.maxMemoryMB).toBe(100);
  });

  it('gives the same hash for the same manifest in YAML and JSON, and another for a change', () => {
    const asJson = JSON.stringify({ id: 'demo', version: '1.0.0', runtime: 'python', entrypoint: 'main.py' });
    const yaml = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MINIMAL }));
    const json = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.json': asJson }));
    const changed = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MINIMAL.replace('1.0.0', '1.0.1') }));

    expect(json.hash).toBe(yaml.hash);
    expect(changed.hash).not.toBe(yaml.hash);
  });

  it('gives fileSha256, the sha256 of exactly the bytes it read, whatever the canonical hash', () => {
    const withComment = `# a comment changes the bytes, not the manifest\r\n${MINIMAL}`;
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': withComment });
    const plain = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MINIMAL }));
    const loaded = loadManifest(dir);

    expect(loaded.fileSha256).toBe(createHash('sha256').update(readFileSync(path.join(dir, 'plugin.yaml'))).digest('hex'));
    expect(plain.fileSha256).toBe(createHash('sha256').update(MINIMAL).digest('hex'));
    expect(loaded.hash).toBe(plain.hash);
    expect(loaded.fileSha256).not.toBe(plain.fileSha256);
  });
});

describe('grantedPaths', () => {
  const GRANTS = dedent(`
    id: demo
    version: 1.0.0
    runtime: python
    entrypoint: main.py
    capabilities:
      - id: inputs
        scope: filesystem
        permissions: [read]
        paths: ["./data/**", "config.json"]
      - id: results
        scope: filesystem
        permissions: [read, write]
        paths: ["out/**"]
  `);
  const TREE = { 'main.py': MAIN_PY, 'plugin.yaml': GRANTS, 'data/rows.csv': 'a,b\n', 'config.json': '{}', out: folder };

  it('resolves each path to its real host path, writable only for a write capability', () => {
    const dir = folders.create(TREE);
    const real = realpathSync(dir);
    expect(loadManifest(dir).grantedPaths).toEqual([
      { capability: 'inputs', hostPath: path.join(real, 'data'), relative: 'data', writable: false },
      { capability: 'inputs', hostPath: path.join(real, 'config.json'), relative: 'config.json', writable: false },
      { capability: 'results', hostPath: path.join(real, 'out'), relative: 'out', writable: true },
    ]);
  });

  it('uses the real folder when the plugin is reached through a symlink', () => {
    const dir = folders.create(TREE);
    const alias = path.join(path.dirname(dir), 'alias');
    symlinkSync(dir, alias);
    const loaded = loadManifest(alias);

    expect(loaded.file).toBe(path.join(alias, 'plugin.yaml'));
    expect(loaded.pluginDir).toBe(realpathSync(dir));
    for (const g of loaded.grantedPaths) {
      expect(g.hostPath.startsWith(realpathSync(dir) + path.sep)).toBe(true);
      expect(g.hostPath).toBe(realpathSync(g.hostPath));
    }
  });

  it('follows a symlink that stays inside the plugin folder to its target', () => {
    const dir = folders.create({ ...TREE, 'plugin.yaml': GRANTS.replace('./data/**', 'current/**'), current: symlink('data') });
    const first = loadManifest(dir).grantedPaths[0];
    expect(first).toMatchObject({ hostPath: path.join(realpathSync(dir), 'data'), relative: 'data' });
  });
});

/** JSON pointers of every object or array in `value` that is not frozen. */
function mutableParts(value: unknown, at: string): string[] {
  if (typeof value !== 'object' || value === null) return [];
  const own = Object.isFrozen(value) ? [] : [at || '/'];
  return own.concat(...Object.entries(value).map(([k, v]) => mutableParts(v, `${at}/${k}`)));
}
