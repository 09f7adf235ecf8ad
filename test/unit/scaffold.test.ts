import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ignoredChange } from '../../src/cli/dev-watch.js';
import { isLogoMeshError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { SCAFFOLD_RUNTIMES, scaffoldPlugin } from '../../src/scaffold/create.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'lm-scaffold-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isLogoMeshError(err) ? err.code : `not a LogoMeshError: ${String(err)}`;
  }
  return undefined;
}

describe('logomesh create (scaffoldPlugin)', () => {
  it.each(SCAFFOLD_RUNTIMES)('writes a %s plugin whose manifest is valid and exposes hello', (runtime) => {
    const dir = path.join(root, `ok-${runtime}`);
    const made = scaffoldPlugin({ runtime, name: `hello-${runtime}`, dir });
    expect(made.dir).toBe(dir);
    const loaded = loadManifest(dir);
    expect(loaded.manifest).toMatchObject({ id: `hello-${runtime}`, runtime, coordination: { exposesMethods: ['hello'] } });
    expect(readdirSync(dir).sort()).toEqual([...made.files].sort());
    expect(made.files).toContain('README.md');
    for (const f of made.files) {
      const text = readFileSync(path.join(dir, f), 'utf8');
      expect(text, f).not.toMatch(/\{\{\w+\}\}/);
      // Readable by the plugin's user whatever the umask.
      expect(statSync(path.join(dir, f)).mode & 0o444, f).toBe(0o444);
    }
    const readme = readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(readme).toContain('logomesh dev .');
    expect(readme).toContain('logomesh test .');
    expect(readme).toContain(`logomesh call hello-${runtime}.hello`);
  });

  it.each(SCAFFOLD_RUNTIMES)('the %s manifest shows how to declare events: uncommented, it is valid and declares them', (runtime) => {
    const dir = path.join(root, `events-${runtime}`);
    scaffoldPlugin({ runtime, name: `events-${runtime}`, dir });
    const file = path.join(dir, 'plugin.yaml');
    const text = readFileSync(file, 'utf8');
    // Declares nothing it does not use: the plugin neither emits nor subscribes.
    expect(loadManifest(dir).manifest.coordination).toMatchObject({ messaging: false, publishes: [], subscribes: [] });
    chmodSync(file, 0o644); // written read-only for everyone
    writeFileSync(file, text.replace(/^ {2}# (messaging|publishes|subscribes):/gm, '  $1:'));
    expect(loadManifest(dir).manifest.coordination).toMatchObject({
      messaging: true,
      publishes: [`events-${runtime}.greeted`],
      subscribes: ['other-plugin.news'],
    });
  });

  it('refuses a name that is not a plugin id, and writes nothing', () => {
    for (const name of ['Hello', 'my_plugin', '-x', 'x-', '', 'a'.repeat(64), 'dots.no']) {
      const dir = path.join(root, `bad-${Math.random().toString(16).slice(2)}`);
      expect(codeOf(() => scaffoldPlugin({ runtime: 'python', name, dir })), name).toBe('LM_SCAFFOLD_NAME');
      expect(() => statSync(dir)).toThrow();
    }
  });

  it('refuses a folder that exists and is not empty, and a file, leaving them as they were', () => {
    const full = path.join(root, 'full');
    mkdirSync(full);
    writeFileSync(path.join(full, 'notes.txt'), 'mine');
    expect(codeOf(() => scaffoldPlugin({ runtime: 'go', name: 'full', dir: full }))).toBe('LM_SCAFFOLD_EXISTS');
    expect(readdirSync(full)).toEqual(['notes.txt']);
    const file = path.join(root, 'a-file');
    writeFileSync(file, 'x');
    expect(codeOf(() => scaffoldPlugin({ runtime: 'go', name: 'a-file', dir: file }))).toBe('LM_SCAFFOLD_EXISTS');
  });

  it('accepts an empty folder, and refuses an unknown runtime with LM_USAGE', () => {
    const empty = path.join(root, 'empty');
    mkdirSync(empty);
    expect(scaffoldPlugin({ runtime: 'rust', name: 'empty', dir: empty }).files).toContain('main.rs');
    expect(codeOf(() => scaffoldPlugin({ runtime: 'java', name: 'x', dir: path.join(root, 'java') }))).toBe('LM_USAGE');
  });
});

describe('logomesh dev: which changes reload', () => {
  it.each(['main.py', 'plugin.yaml', 'lib/util.go', 'src/a.rs', 'data/words.txt', 'vendor/x/y.go', null])('reloads on %s', (file) => {
    expect(ignoredChange(file)).toBe(false);
  });

  it.each([
    '.main.py.swp',
    '.main.py.swx',
    'main.py~',
    '4913',
    '.#main.py',
    '#main.py#',
    'main.py___jb_tmp___',
    '.git/index',
    '.git',
    '__pycache__/main.cpython-311.pyc',
    'node_modules/ws/index.js',
    'sub/.idea/workspace.xml',
    '.DS_Store',
  ])('ignores %s', (file) => {
    expect(ignoredChange(file)).toBe(true);
  });
});
