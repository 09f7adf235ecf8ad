import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { manifestSchema } from '../manifest/index.js';
import type { Runtime } from '../manifest/types.js';
import { REPO_DIR } from '../paths.js';

/**
 * The templates of a new plugin, one folder per runtime, plus README.md.tmpl shared by all.
 * They are read from the source tree (also when running from dist/), like images/.
 */
const TEMPLATES_DIR = path.join(REPO_DIR, 'src', 'scaffold', 'templates');
const SCHEMA_FILE = path.join(REPO_DIR, 'src', 'manifest', 'manifest-v2.schema.json');
const TEMPLATE_SUFFIX = '.tmpl';

/** What the README of a new plugin says about its runtime. */
interface RuntimeNotes {
  readonly language: string;
  /** Each file the template makes, and what it is. */
  readonly files: Readonly<Record<string, string>>;
  /** What `logomesh test` runs, in a sentence's words. */
  readonly tests: string;
  /** What `logomesh dev` does on a change. */
  readonly reload: string;
  readonly compiled: boolean;
  /** Test command arguments that select some tests, for the README. */
  readonly filterExample: string;
}

const NOTES: Readonly<Record<Runtime, RuntimeNotes>> = {
  python: {
    language: 'Python',
    files: {
      'plugin.yaml': 'the manifest: id, runtime, entrypoint, limits, and the methods it exposes',
      'main.py': 'the plugin: `hello`, served by the Python SDK',
      'test_main.py': 'its tests (`unittest`, with the SDK\'s fake hub `logomesh.testing.FakeHub`)',
      'README.md': 'this file',
    },
    tests: '`python3 -m unittest discover` (every `test*.py` file)',
    reload: 'starts the new version beside the running one, which serves until the new one is ready (about 0.3 s)',
    compiled: false,
    filterExample: '-k fake_hub',
  },
  node: {
    language: 'JavaScript (Node.js 22)',
    files: {
      'plugin.yaml': 'the manifest: id, runtime, entrypoint, limits, and the methods it exposes',
      'main.mjs': 'the entrypoint: runs the plugin',
      'plugin.mjs': 'the plugin: `hello`, served by the Node.js SDK',
      'plugin.test.mjs': 'its tests (`node:test`): `hello` as a function, and through the SDK\'s fake hub (`logomesh/testing`)',
      'README.md': 'this file',
    },
    tests: '`node --test` (every `*.test.mjs` file, and the other names `node --test` looks for)',
    reload: 'starts the new version beside the running one, which serves until the new one is ready (about 0.3 s)',
    compiled: false,
    filterExample: "--test-name-pattern='fake hub'",
  },
  go: {
    language: 'Go',
    files: {
      'plugin.yaml': 'the manifest: id, runtime, entrypoint, limits, and the methods it exposes',
      'main.go': 'the plugin: `hello`, served by the Go SDK (`logomesh.local/logomesh`)',
      'main_test.go': 'its tests (`go test`, with the SDK\'s fake hub `logomeshtest`)',
      'README.md': 'this file',
    },
    tests: '`go test` (through `logomesh-go-build --test`)',
    reload: 'rebuilds the plugin\'s image and starts the new version beside the running one',
    compiled: true,
    filterExample: '-run TestHello',
  },
  rust: {
    language: 'Rust',
    files: {
      'plugin.yaml': 'the manifest: id, runtime, entrypoint, limits, and the methods it exposes',
      'main.rs': 'the plugin: `hello`, served by the Rust SDK, and its tests (`#[cfg(test)]`, with `logomesh::testing::Harness`)',
      'README.md': 'this file',
    },
    tests: '`cargo test` (through `logomesh-test-plugin`)',
    reload: 'rebuilds the plugin\'s image and starts the new version beside the running one',
    compiled: true,
    filterExample: 'fake_hub',
  },
};

export const SCAFFOLD_RUNTIMES = Object.keys(NOTES) as Runtime[];

/** The manifest schema's plugin id pattern: a new plugin's name must be a valid id. */
const ID_PATTERN = new RegExp((manifestSchema.properties.id as { pattern: string }).pattern);

export interface ScaffoldOptions {
  readonly runtime: string;
  /** The plugin id. */
  readonly name: string;
  /** The new plugin folder; it must not exist, or be empty. */
  readonly dir: string;
}

export interface Scaffolded {
  readonly id: string;
  readonly runtime: Runtime;
  /** Absolute path of the new plugin folder. */
  readonly dir: string;
  /** The files written, relative to dir. */
  readonly files: readonly string[];
}

/** Check a runtime name for `create`; LM_USAGE if it is not one with a template. */
function scaffoldRuntime(runtime: string): Runtime {
  if (!(SCAFFOLD_RUNTIMES as string[]).includes(runtime)) {
    throw new LogoMeshError('LM_USAGE', `create needs a runtime: one of ${SCAFFOLD_RUNTIMES.join(', ')}; found '${runtime}'`, {
      expected: SCAFFOLD_RUNTIMES.join(', '),
      found: runtime,
    });
  }
  return runtime as Runtime;
}

/** Check a new plugin's name: it becomes the manifest's id. */
function checkPluginName(name: string): void {
  if (!ID_PATTERN.test(name)) {
    throw new LogoMeshError(
      'LM_SCAFFOLD_NAME',
      `'${name}' cannot be a plugin id: use 1-63 lowercase letters, digits and inner hyphens, starting and ending with a letter or digit, such as ${suggestId(name)}`,
      { path: '/id', expected: `a plugin id matching ${ID_PATTERN.source}`, found: name },
    );
  }
}

/** A valid id close to a rejected name, for the error message. */
function suggestId(name: string): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return id || 'my-plugin';
}

/** Refuse a target that exists and is not an empty folder. */
function checkTarget(dir: string): void {
  if (!existsSync(dir)) return;
  const st = statSync(dir);
  if (!st.isDirectory()) {
    throw new LogoMeshError('LM_SCAFFOLD_EXISTS', `${dir} exists and is not a folder; choose another folder for the new plugin`, {
      file: dir,
      expected: 'a folder that does not exist yet, or an empty one',
      found: 'a file',
    });
  }
  const entries = readdirSync(dir);
  if (entries.length > 0) {
    const shown = entries.slice(0, 5).join(', ') + (entries.length > 5 ? ', …' : '');
    throw new LogoMeshError('LM_SCAFFOLD_EXISTS', `${dir} already exists and is not empty (${shown}); nothing was written. Choose a new folder, or empty this one`, {
      file: dir,
      expected: 'a folder that does not exist yet, or an empty one',
      found: `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`,
    });
  }
}

/**
 * Write a new plugin folder from the runtime's templates: a valid manifest exposing
 * `hello`, the code using the runtime's SDK, its tests, and a README. Refuses an invalid
 * name (LM_SCAFFOLD_NAME) and a target that exists and is not empty (LM_SCAFFOLD_EXISTS);
 * in both cases nothing is written.
 */
export function scaffoldPlugin(opts: ScaffoldOptions): Scaffolded {
  const runtime = scaffoldRuntime(opts.runtime);
  checkPluginName(opts.name);
  const dir = path.resolve(opts.dir);
  checkTarget(dir);
  const notes = NOTES[runtime];
  const templateDir = path.join(TEMPLATES_DIR, runtime);
  const values: Record<string, string> = {
    id: opts.name,
    runtime,
    language: notes.language,
    // An editor hint only (LogoMesh ignores $schema): the schema of this installation,
    // relative inside the repository (as the examples have it), absolute elsewhere.
    schema: isInside(dir, REPO_DIR) ? path.relative(dir, SCHEMA_FILE).split(path.sep).join('/') : SCHEMA_FILE,
    files: Object.entries(notes.files)
      .map(([file, what]) => `| \`${file}\` | ${what} |`)
      .join('\n'),
    tests: notes.tests,
    reload: notes.reload,
    compileNote: notes.compiled ? ' or the code does not compile' : '',
    filterExample: notes.filterExample,
  };
  const sources = readdirSync(templateDir)
    .filter((f) => f.endsWith(TEMPLATE_SUFFIX))
    .sort()
    .map((f) => ({ from: path.join(templateDir, f), to: f.slice(0, -TEMPLATE_SUFFIX.length) }));
  sources.push({ from: path.join(TEMPLATES_DIR, 'README.md.tmpl'), to: 'README.md' });

  // Readable by the plugin's user (uid 10001) whatever the umask: the folder is mounted as is.
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const { from, to } of sources) {
    const file = path.join(dir, to);
    writeFileSync(file, fill(readFileSync(from, 'utf8'), values, from), { flag: 'wx' });
    chmodSync(file, 0o644);
  }
  return { id: opts.name, runtime, dir, files: sources.map((s) => s.to) };
}

function isInside(dir: string, root: string): boolean {
  const rel = path.relative(root, dir);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Replace every {{name}}; a placeholder without a value is a bug in the template. */
function fill(text: string, values: Record<string, string>, file: string): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`template ${file} uses {{${key}}}, which has no value`);
    return v;
  });
}
