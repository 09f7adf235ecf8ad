import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, ManifestRejectedError, type ErrorCode, type ManifestIssue } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { withEffectiveUid } from './support/effective-uid.js';
import { dedent, folder, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

/**
 * Issue 12: manifests written by a hostile author. Every case the issue lists (YAML tricks,
 * special files, smuggled values) must end in a coded refusal naming the file, quickly,
 * with an error that can be printed and serialised; valid input the format allows
 * (bare-CR line breaks) must be accepted.
 */

const folders = new PluginFolders();
const servers: net.Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  folders.removeAll();
});

const HEAD = 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n';
const isRoot = process.getuid?.() === 0;

/** Load `target` expecting a refusal, within a time bound; returns the error. */
function refusal(target: string, file = /plugin\.(yaml|json)$/): ManifestRejectedError {
  const started = performance.now();
  let caught: unknown;
  try {
    loadManifest(target);
  } catch (err) {
    caught = err;
  }
  expect(performance.now() - started).toBeLessThan(5000);
  if (!(caught instanceof ManifestRejectedError)) throw new Error(`expected a ManifestRejectedError for ${target}, got ${String(caught)}`);
  // Every refusal can be printed and serialised (a circular value once broke the printing).
  expect(() => JSON.stringify(caught.toJSON())).not.toThrow();
  for (const issue of caught.issues) {
    expect(Object.keys(ERROR_CODES)).toContain(issue.code);
    expect(issue.file).toMatch(file);
    expect(issue.expected).toMatch(/\S/);
    expect(issue.found).toMatch(/\S/);
  }
  return caught;
}

function issueAt(err: ManifestRejectedError, code: ErrorCode, pointer: string): ManifestIssue {
  const hit = err.issues.find((i) => i.code === code && i.path === pointer);
  if (!hit) throw new Error(`no ${code} at ${pointer || '/'} among:\n${err.message}`);
  return hit;
}

interface YamlCase {
  readonly name: string;
  readonly manifest: string;
  readonly path: string;
  readonly found: RegExp;
  readonly line?: number;
}

const yamlCases: YamlCase[] = [
  { name: 'an undefined alias (*a alone)', manifest: `${HEAD}dependencies: {system: *a}\n`, path: '/dependencies/system', found: /^the alias \*a$/, line: 5 },
  { name: 'a self-referencing alias (&a [*a])', manifest: `${HEAD}dependencies: {system: &a [*a]}\n`, path: '/dependencies/system/0', found: /^the alias \*a$/, line: 5 },
  {
    name: 'a billion-laughs alias bomb (more than 50 alias uses)',
    manifest: HEAD + dedent(`
      dependencies:
        system: &a [python3, python3, python3, python3, python3, python3, python3, python3, python3, python3]
        plugins: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        packages: {python: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], npm: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]}
    `),
    path: '/dependencies/plugins/0',
    found: /^the alias \*a$/,
  },
  { name: 'a !!omap section hiding a bad value and an unknown field', manifest: `${HEAD}resources: !!omap [{maxMemoryMB: -5}, {bogus: 1}]\n`, path: '/resources', found: /^the tag !!omap$/, line: 5 },
  { name: 'a !!set section', manifest: `${HEAD}coordination: !!set {messaging}\n`, path: '/coordination', found: /^the tag !!set$/ },
  { name: 'a duplicate key made with an alias (&k id then *k)', manifest: '&k id: demo\n*k : other\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n', path: '/id', found: /^the anchor &k$/, line: 1 },
  { name: 'a !!python/object tag', manifest: `${HEAD}dependencies: {system: [!!python/object:os.system ls]}\n`, path: '/dependencies/system/0', found: /^the tag !!python\/object:os.system$/ },
  { name: 'a !custom tag', manifest: `${HEAD}resources: !custom {maxMemoryMB: 64}\n`, path: '/resources', found: /^the tag !custom$/ },
  { name: 'a !!float tag on an integer', manifest: `${HEAD}resources: {maxMemoryMB: !!float 64}\n`, path: '/resources/maxMemoryMB', found: /^the tag !!float$/ },
  { name: 'even a !!str tag (no tag at all is accepted)', manifest: `${HEAD}dependencies: {system: [!!str 1]}\n`, path: '/dependencies/system/0', found: /^the tag !!str$/ },
  { name: 'a %YAML 1.1 header (yes as true, << merges)', manifest: `%YAML 1.1\n---\n${HEAD}coordination: {messaging: yes}\n`, path: '', found: /^%YAML 1\.1$/, line: 1 },
  { name: 'a %TAG directive', manifest: `%TAG !e! tag:example.com,2000:\n---\n${HEAD}`, path: '', found: /^%TAG !e!$/, line: 1 },
  { name: 'NaN, named as NaN rather than null', manifest: `${HEAD}resources: {maxMemoryMB: .nan}\n`, path: '/resources/maxMemoryMB', found: /^NaN \(not a number\)$/ },
  { name: 'negative infinity', manifest: `${HEAD}resources: {maxCpuPercent: -.inf}\n`, path: '/resources/maxCpuPercent', found: /^-infinity$/ },
  { name: 'a number too large for a double (infinity)', manifest: `${HEAD}resources: {maxCpuPercent: 1e999}\n`, path: '/resources/maxCpuPercent', found: /^infinity$/ },
  { name: 'a number as a key', manifest: `${HEAD}resources: {2048: 1}\n`, path: '/resources', found: /^the key 2048 \(number\)$/ },
  { name: 'a boolean as a key', manifest: `${HEAD}true: 1\n`, path: '', found: /^the key true \(boolean\)$/ },
  { name: 'a list as a key', manifest: `${HEAD}? [a, b]\n: 1\n`, path: '', found: /^a list as a key$/ },
  { name: 'nesting deeper than any manifest', manifest: `${HEAD}x: ${'['.repeat(40)}${']'.repeat(40)}\n`, path: '', found: /^nesting deeper than 32 levels$/, line: 5 },
  // Composing this once overflowed the stack; composing it twice in one process crashed Node.
  { name: 'flow nesting that once exhausted the parser (1)', manifest: `${HEAD}x: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`, path: '', found: /^nesting deeper than 32 levels$/, line: 5 },
  { name: 'flow nesting that once exhausted the parser (2)', manifest: `${HEAD}x: ${'{a: '.repeat(50_000)}\n`, path: '', found: /^nesting deeper than 32 levels$/, line: 5 },
  { name: 'compact nesting on one line (- - - x)', manifest: `${HEAD}x:\n  ${'- '.repeat(1000)}x\n`, path: '', found: /^nesting deeper than 32 levels$/, line: 6 },
  {
    name: 'nesting by indentation',
    manifest: `${HEAD}${Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} 1\n`,
    path: '',
    found: /^nesting deeper than 32 levels$/,
    line: 37,
  },
  { name: 'closing brackets that close nothing', manifest: `${HEAD}${']'.repeat(200_000)}\n`, path: '', found: /^a '\]' that closes nothing$/, line: 5 },
  { name: 'a broken flow list of 100,000 items', manifest: `${HEAD}x: [${'\t,'.repeat(100_000)}]\n`, path: '', found: /^more than 4096 items$/, line: 5 },
  { name: 'directive after directive', manifest: `${'%\n'.repeat(100_000)}---\n${HEAD}`, path: '', found: /^a second directive$/, line: 2 },
  { name: 'a block list longer than any schema allows', manifest: `${HEAD}dependencies:\n  system:\n${'    - a\n'.repeat(5000)}`, path: '', found: /^5000 items$/, line: 7 },
  { name: 'two documents in one file', manifest: `${HEAD}---\nid: other\n`, path: '', found: /multiple documents/ },
];

describe('YAML tricks are refused with LM_MANIFEST_PARSE at their place in the file', () => {
  it.each(yamlCases)('$name', ({ manifest, path: pointer, found, line }) => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': manifest });
    const issue = issueAt(refusal(dir), 'LM_MANIFEST_PARSE', pointer);
    expect(issue.found).toMatch(found);
    expect(issue.line).toEqual(expect.any(Number));
    if (line !== undefined) expect(issue.line).toBe(line);
  });

  it('a tagged section is never seen by the schema as an empty object with defaults', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}resources: !!omap [{maxMemoryMB: -5}, {bogus: 1}]\n` });
    const err = refusal(dir);
    expect(err.issues.every((i) => i.code === 'LM_MANIFEST_PARSE')).toBe(true);
  });

  it('a name the file makes 200 KiB long is clipped in the report', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}x: &${'a'.repeat(200_000)} 1\n` });
    const err = refusal(dir);
    expect(issueAt(err, 'LM_MANIFEST_PARSE', '/x').found).toMatch(/^the anchor &a+…$/);
    expect(err.message.length).toBeLessThan(2000);
  });

  it('thousands of problems: the first hundred, located, and a count of the rest', () => {
    const keys = Array.from({ length: 3000 }, (_, i) => `  bogus${i}: 1`).join('\n');
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}resources:\n${keys}\n` });
    const err = refusal(dir);
    expect(err.issues).toHaveLength(101);
    expect(err.issues.slice(0, 100).every((i) => i.code === 'LM_MANIFEST_INVALID' && i.line !== undefined)).toBe(true);
    expect(err.issues[100]?.found).toBe('2900 more issue(s) like these');
  });

  it('an anchor that is never used is refused too: the accepted set is closed', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}dependencies: {system: &sys [python3]}\n` });
    expect(issueAt(refusal(dir), 'LM_MANIFEST_PARSE', '/dependencies/system').found).toBe('the anchor &sys');
  });

  it('__proto__ is an ordinary unknown field, not a prototype', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}resources:\n  __proto__: {maxMemoryMB: 1}\n` });
    expect(issueAt(refusal(dir), 'LM_MANIFEST_INVALID', '/resources/__proto__').found).toBe("unknown field '__proto__'");
    expect(({} as { maxMemoryMB?: number }).maxMemoryMB).toBeUndefined();
  });

  it('bytes that are not UTF-8, and UTF-16, are refused rather than read as replacement characters', () => {
    const bad = folders.create({ 'main.py': MAIN_PY });
    writeFileSync(path.join(bad, 'plugin.yaml'), Buffer.concat([Buffer.from(HEAD), Buffer.from([0x78, 0x3a, 0x20, 0xff, 0x0a])]));
    expect(issueAt(refusal(bad), 'LM_MANIFEST_PARSE', '').found).toBe(`bytes that are not UTF-8 (first at byte ${HEAD.length + 3})`);
    const utf16 = folders.create({ 'main.py': MAIN_PY });
    writeFileSync(path.join(utf16, 'plugin.yaml'), Buffer.from(`\ufeff${HEAD}`, 'utf16le'));
    expect(issueAt(refusal(utf16), 'LM_MANIFEST_PARSE', '').found).toMatch(/UTF-16/);
  });
});

describe('a plugin.json is JSON, and means the same read as JSON or as YAML', () => {
  const JSON_TEXT = JSON.stringify({ id: 'demo', version: '1.0.0', runtime: 'python', entrypoint: 'main.py' }, null, 2);

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['bare CR (JSON.parse reads it)', '\r'],
  ])('accepts %s line breaks', (_name, eol) => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.json': JSON_TEXT.replace(/\n/g, eol) });
    expect(loadManifest(dir).manifest.id).toBe('demo');
  });

  it('accepts tab indentation and a UTF-8 byte-order mark', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.json': `\ufeff${JSON_TEXT.replace(/ {2}/g, '\t')}` });
    expect(loadManifest(dir).manifest.id).toBe('demo');
  });

  it('reports the right line after bare-CR line breaks', () => {
    const text = JSON.stringify({ id: 'demo', version: '1.0.0', runtime: 'java', entrypoint: 'main.py' }, null, 2).replace(/\n/g, '\r');
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.json': text });
    expect(issueAt(refusal(dir), 'LM_MANIFEST_INVALID', '/runtime').line).toBe(4);
  });

  it('still refuses what YAML reads but JSON does not (a comment)', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.json': `${JSON_TEXT}\n# note\n` });
    expect(issueAt(refusal(dir), 'LM_MANIFEST_PARSE', '').expected).toMatch(/strict JSON/);
  });
});

describe('YAML line breaks: every style YAML 1.2 allows', () => {
  it.each([
    ['CRLF', '\r\n'],
    ['bare CR', '\r'],
  ])('accepts %s, and reports lines as an editor counts them', (_name, eol) => {
    const ok = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}resources:\n  maxMemoryMB: 64\n`.replace(/\n/g, eol) });
    expect(loadManifest(ok).manifest.resources.maxMemoryMB).toBe(64);
    const bad = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}resources:\n  maxMemoryMB: 8\n`.replace(/\n/g, eol) });
    expect(issueAt(refusal(bad), 'LM_MANIFEST_LIMIT', '/resources/maxMemoryMB')).toMatchObject({ line: 6, column: 3 });
  });

  it('accepts a mix of the three in one file', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': 'id: demo\r\nversion: 1.0.0\rruntime: python\nentrypoint: main.py\r' });
    expect(loadManifest(dir).manifest.entrypoint).toBe('main.py');
  });
});

describe('a manifest that is not a regular file inside the plugin folder: LM_MANIFEST_FILE, nothing read', () => {
  /** A plugin folder whose plugin.yaml is made by `make`. */
  const withManifest = (make: (file: string) => void): string => {
    const dir = folders.create({ 'main.py': MAIN_PY });
    make(path.join(dir, 'plugin.yaml'));
    return dir;
  };
  const fileIssue = (dir: string): ManifestIssue => issueAt(refusal(dir), 'LM_MANIFEST_FILE', '');

  it('a folder (was EISDIR)', () => {
    expect(fileIssue(withManifest((f) => mkdirSync(f))).found).toBe('a folder');
  });

  it('a FIFO (was a hang)', () => {
    expect(fileIssue(withManifest((f) => execFileSync('mkfifo', [f]))).found).toBe('a FIFO (named pipe)');
  });

  it('a Unix socket (was ENXIO)', async () => {
    const dir = folders.create({ 'main.py': MAIN_PY });
    const server = net.createServer().listen(path.join(dir, 'plugin.yaml'));
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    expect(fileIssue(dir).found).toBe('a Unix socket');
  });

  it.each(['/dev/zero', '/proc/self/mem', '/proc/kmsg', '/dev/tty'])('a symlink to %s (was a runaway read, EIO, ENXIO or a hang)', (target) => {
    const issue = fileIssue(withManifest((f) => symlinkSync(target, f)));
    expect(issue.found).toMatch(/^a symlink to \/(dev|proc)\/\S+, outside /);
  });

  it('a symlink to a file outside the folder: named, its contents never read or shown', () => {
    const dir = withManifest((f) => symlinkSync('../outside/secret.txt', f));
    const err = refusal(dir);
    expect(issueAt(err, 'LM_MANIFEST_FILE', '').found).toBe(`a symlink to ${path.join(path.dirname(dir), 'outside', 'secret.txt')}, outside ${dir}`);
    expect(err.message).not.toContain('host secret');
    const passwd = withManifest((f) => symlinkSync('/etc/passwd', f));
    expect(refusal(passwd).message).not.toContain('root:');
  });

  it.runIf(isRoot)('a device node made in the folder (mknod, root only)', () => {
    expect(fileIssue(withManifest((f) => execFileSync('mknod', [f, 'c', '1', '5']))).found).toBe('a character device');
  });

  it('a file it may not read (was EACCES; as root, read with the effective uid of nobody)', () => {
    const dir = withManifest((f) => writeFileSync(f, HEAD, { mode: 0o000 }));
    if (!isRoot) {
      expect(fileIssue(dir).found).toBe('a file that cannot be opened (EACCES)');
      return;
    }
    for (let d = dir; d !== path.dirname(d) && d.startsWith(path.dirname(path.dirname(dir))); d = path.dirname(d)) chmodSync(d, 0o755);
    const issue = withEffectiveUid(65534, () => fileIssue(dir));
    expect(issue.found).toBe('a file that cannot be opened (EACCES)');
  });

  it('a plugin folder it may not search: named with its errno, not as "nothing"', () => {
    const dir = withManifest((f) => writeFileSync(f, HEAD));
    const blocked = path.join(dir, 'sub');
    mkdirSync(path.join(blocked, 'plugin'), { recursive: true });
    chmodSync(blocked, 0o700);
    const load = () => {
      try {
        loadManifest(path.join(blocked, 'plugin'));
      } catch (err) {
        return err as { code: string; details: { found: string } };
      }
      throw new Error('loaded');
    };
    if (!isRoot) return void expect(load()).toMatchObject({ code: 'LM_MANIFEST_NOT_FOUND', details: { found: 'a path that cannot be examined (EACCES)' } });
    for (let d = dir; d !== path.dirname(d) && d.startsWith(path.dirname(path.dirname(dir))); d = path.dirname(d)) chmodSync(d, 0o755);
    expect(withEffectiveUid(65534, load)).toMatchObject({ code: 'LM_MANIFEST_NOT_FOUND', details: { found: 'a path that cannot be examined (EACCES)' } });
  });

  it('a plugin folder holding the manifest directly or given as the file, alike', () => {
    const dir = withManifest((f) => execFileSync('mkfifo', [f]));
    expect(issueAt(refusal(path.join(dir, 'plugin.yaml')), 'LM_MANIFEST_FILE', '').found).toBe('a FIFO (named pipe)');
  });

  it.skipIf(!existsSync('/dev/zero'))('given directly as /dev/zero (its own folder is /dev): refused by kind, not read', () => {
    const err = refusal('/dev/zero', /^\/dev\/zero$/);
    expect(err.issues[0]).toMatchObject({ code: 'LM_MANIFEST_FILE', found: 'a character device' });
  });
});

describe('a write grant cannot reach the manifest through a hard link', () => {
  const GRANT = `${HEAD}capabilities:\n  - {id: out, scope: filesystem, permissions: [read, write], paths: ["out/**"]}\n`;

  it('refuses a manifest with a second name in a write-granted folder', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': GRANT, out: folder });
    linkSync(path.join(dir, 'plugin.yaml'), path.join(dir, 'out', 'state.yaml'));
    expect(issueAt(refusal(dir), 'LM_MANIFEST_FILE', '').found).toBe('a file with 2 names (hard links)');
  });

  it('refuses a second name anywhere, since an operator grant could reach it later', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD });
    linkSync(path.join(dir, 'plugin.yaml'), path.join(path.dirname(dir), 'outside', 'copy.yaml'));
    expect(issueAt(refusal(dir), 'LM_MANIFEST_FILE', '').found).toBe('a file with 2 names (hard links)');
  });

  it('a manifest that is a symlink into a write-granted folder: the grant covers its real file', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'out/real.yaml': GRANT });
    symlinkSync('out/real.yaml', path.join(dir, 'plugin.yaml'));
    expect(issueAt(refusal(dir), 'LM_MANIFEST_PATH', '/capabilities/0/paths/0').found).toBe('"out/**" covers real.yaml');
  });

  it('accepts the same grant once the manifest has one name', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': GRANT, out: folder });
    expect(loadManifest(dir).grantedPaths).toEqual([expect.objectContaining({ relative: 'out', writable: true })]);
  });
});

describe('the entrypoint names its kind', () => {
  it('a FIFO is "a FIFO", not "a folder"', () => {
    const dir = folders.create({ 'plugin.yaml': HEAD });
    execFileSync('mkfifo', [path.join(dir, 'main.py')]);
    expect(issueAt(refusal(dir), 'LM_MANIFEST_ENTRYPOINT', '/entrypoint').found).toBe('a FIFO (named pipe) at "main.py"');
  });

  it('a socket is "a Unix socket"', async () => {
    const dir = folders.create({ 'plugin.yaml': HEAD });
    const server = net.createServer().listen(path.join(dir, 'main.py'));
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    expect(issueAt(refusal(dir), 'LM_MANIFEST_ENTRYPOINT', '/entrypoint').found).toBe('a Unix socket at "main.py"');
  });

  it('a NUL in a path is refused with a code, not thrown by the file functions', () => {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD.replace('main.py', '"main\\0.py"') });
    expect(issueAt(refusal(dir), 'LM_MANIFEST_ENTRYPOINT', '/entrypoint').expected).toBe('a path without control characters');
  });
});
