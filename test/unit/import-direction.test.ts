import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The dependency rule of docs/architecture.md, checked on every import under src/: a
 * folder (or top-level file) imports only from the rows above its own, never from its row
 * or below, save the pairs listed in MUTUAL. A new folder fails this test until it has its
 * row here and in the doc's layout table, in the same order (also checked).
 */
const LAYERS: readonly (readonly string[])[] = [
  ['code-cache.ts'],
  ['errors.ts', 'labels.ts', 'log.ts', 'paths.ts', 'read-file.ts', 'schema-errors.ts', 'schema-validator.ts'],
  ['audit', 'violations'],
  ['seccomp'],
  ['protobuf'],
  ['manifest'],
  ['signing', 'policy'],
  ['runtimes'],
  ['engine'],
  ['images'],
  ['sandbox'],
  ['monitor'],
  ['memory'],
  ['kubernetes'],
  ['cluster'],
  ['scaffold'],
  ['hub'],
  ['grants'],
  ['controller'],
  ['console'],
  ['control'],
  ['index.ts', 'run-api.ts'],
  ['testkit', 'cli'],
];

/** Units of one row that may use each other: a policy lists public keys, and verifying a signature needs the policy. */
const MUTUAL = [['signing', 'policy']];

/** Files that may import only these files: the CLI only the library API and the control client; the test kit only the library API; the control client nothing of the controller's implementation. */
const ONLY: Record<string, readonly string[]> = {
  cli: ['index.ts', 'run-api.ts', 'control/client.ts'],
  testkit: ['index.ts'],
  'control/client.ts': ['errors.ts', 'controller/home.ts', 'controller/types.ts'],
};

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = path.join(REPO, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) return e === 'templates' ? [] : sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative module a file imports or re-exports, statically or not, as paths under src/ (`.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => path.relative(SRC, path.resolve(path.dirname(file), s)).replace(/\.js$/, '.ts').split(path.sep).join('/'));
}

/** The unit of a path under src/: its top folder, or the file itself at the top. */
const unitOf = (rel: string) => (rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : rel);
const rowOf = (unit: string) => LAYERS.findIndex((row) => row.includes(unit));

describe('the dependency rule between folders (docs/architecture.md)', () => {
  const files = sources(SRC).map((f) => ({ file: f, rel: path.relative(SRC, f).split(path.sep).join('/') }));

  it('every folder and top-level file of src/ has its row', () => {
    const units = [...new Set(files.map((f) => unitOf(f.rel)))].sort();
    expect(units.filter((u) => rowOf(u) < 0), 'add each to LAYERS here and to the layout table of docs/architecture.md').toEqual([]);
  });

  it('imports only point up (or within a folder, or between the mutual pairs)', () => {
    const wrong: string[] = [];
    for (const { file, rel } of files) {
      const from = unitOf(rel);
      for (const target of importsOf(file)) {
        const to = unitOf(target);
        if (to === from) continue;
        const mutual = MUTUAL.some((pair) => pair.includes(from) && pair.includes(to));
        if (!(rowOf(to) < rowOf(from) || mutual)) wrong.push(`${rel} -> ${target}`);
      }
    }
    expect(wrong, 'an import against the direction of docs/architecture.md#layout').toEqual([]);
  });

  it('the CLI uses only the library API and the control client; the client nothing of the controller but its types and home', () => {
    const wrong: string[] = [];
    for (const { file, rel } of files) {
      const allowed = ONLY[rel] ?? ONLY[unitOf(rel)];
      if (!allowed) continue;
      for (const target of importsOf(file)) if (unitOf(target) !== unitOf(rel) && !allowed.includes(target)) wrong.push(`${rel} -> ${target}`);
    }
    expect(wrong).toEqual([]);
  });

  it("the doc's layout table has the same rows in the same order", () => {
    const doc = readFileSync(path.join(REPO, 'docs', 'architecture.md'), 'utf8');
    const section = doc.slice(doc.indexOf('\n## Layout'), doc.indexOf('\n## ', doc.indexOf('\n## Layout') + 1));
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| `src/'))
      .map((l) => [...l.split('|')[1]!.matchAll(/`src\/([^`]+?)\/?`/g)].map((m) => m[1]!).filter((u) => rowOf(u) >= 0));
    expect(rows.filter((r) => r.length)).toEqual(LAYERS.map((r) => [...r]));
  });
});
