import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { validateCommand } from '../../src/cli/validate.js';
import { ERROR_CODES } from '../../src/errors.js';
import { MAIN_PY, PluginFolders } from './support/plugin-folder.js';

/**
 * `logomesh validate a b c` reports every target, whatever one of them does: a hostile
 * manifest once crashed the command and wiped the output for every folder.
 */

const folders = new PluginFolders();
afterAll(() => folders.removeAll());
afterEach(() => {
  vi.doUnmock('../../src/manifest/index.js');
  vi.resetModules();
});

const HEAD = 'id: demo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n';

function captured(): CliIo & { lines: { out: string[]; err: string[] } } {
  const lines = { out: [] as string[], err: [] as string[] };
  return { lines, out: (l) => void lines.out.push(l), err: (l) => void lines.err.push(l), stdout: process.stdout, stderr: process.stderr };
}

interface Outcome {
  target: string;
  ok: boolean;
  issues: { code: string; file: string; message: string }[];
}

/** A row of hostile targets around one good one. */
function targets(): { name: string; target: string; code?: string }[] {
  const good = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD });
  const undefinedAlias = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}dependencies: {system: *a}\n` });
  const selfAlias = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': `${HEAD}dependencies: {system: &a [*a]}\n` });
  const fifo = folders.create({ 'main.py': MAIN_PY });
  execFileSync('mkfifo', [path.join(fifo, 'plugin.yaml')]);
  const zero = folders.create({ 'main.py': MAIN_PY });
  symlinkSync('/dev/zero', path.join(zero, 'plugin.yaml'));
  const dirManifest = folders.create({ 'main.py': MAIN_PY });
  mkdirSync(path.join(dirManifest, 'plugin.yaml'));
  const empty = folders.create({});
  return [
    { name: 'undefined alias', target: undefinedAlias, code: 'LM_MANIFEST_PARSE' },
    { name: 'good', target: good },
    { name: 'self alias', target: selfAlias, code: 'LM_MANIFEST_PARSE' },
    { name: 'FIFO', target: fifo, code: 'LM_MANIFEST_FILE' },
    { name: '/dev/zero', target: zero, code: 'LM_MANIFEST_FILE' },
    { name: 'folder as manifest', target: dirManifest, code: 'LM_MANIFEST_FILE' },
    { name: 'no manifest', target: empty, code: 'LM_MANIFEST_NOT_FOUND' },
    { name: 'nothing there', target: path.join(empty, 'missing'), code: 'LM_MANIFEST_NOT_FOUND' },
  ];
}

describe('logomesh validate with many targets', () => {
  it('--json: one outcome per target, in order, each refusal coded', () => {
    const row = targets();
    const io = captured();
    expect(validateCommand(row.map((r) => r.target), true, io)).toBe(1);
    const outcomes = JSON.parse(io.lines.out.join('\n')) as Outcome[];
    expect(outcomes.map((o) => o.target)).toEqual(row.map((r) => r.target));
    outcomes.forEach((o, i) => {
      const expected = row[i];
      expect(o.ok).toBe(expected?.code === undefined);
      if (expected?.code) expect(o.issues[0]?.code).toBe(expected.code);
      for (const issue of o.issues) expect(Object.keys(ERROR_CODES)).toContain(issue.code);
    });
  });

  it('text: the good one is ok on stdout, every other one has its lines on stderr, then the count', () => {
    const row = targets();
    const io = captured();
    expect(validateCommand(row.map((r) => r.target), false, io)).toBe(1);
    expect(io.lines.out).toEqual([expect.stringMatching(/^ok {3}\S+plugin\.yaml \(demo@1\.0\.0, python\)$/)]);
    expect(io.lines.err.at(-1)).toMatch(new RegExp(`^${row.length - 1} of ${row.length} manifest\\(s\\) rejected`));
    for (const r of row.filter((x) => x.code)) expect(io.lines.err.some((l) => l.includes(r.code as string) && l.includes(path.basename(path.dirname(r.target))))).toBe(true);
  });

  it('a failure without a code (a LogoMesh bug) is that target\'s LM_INTERNAL outcome, and the others are still checked', async () => {
    vi.resetModules();
    vi.doMock('../../src/manifest/index.js', async (importOriginal) => {
      const real = await importOriginal<typeof import('../../src/manifest/index.js')>();
      return {
        ...real,
        loadManifest: (target: string) => {
          if (target.endsWith('boom')) throw new TypeError('Converting circular structure to JSON');
          return real.loadManifest(target);
        },
      };
    });
    const { validateCommand: validate } = await import('../../src/cli/validate.js');
    const good = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': HEAD });
    const boom = path.join(folders.create({}), 'boom');
    const io = captured();
    expect(validate([boom, good], true, io)).toBe(1);
    const [bad, ok] = JSON.parse(io.lines.out.join('\n')) as Outcome[];
    expect(bad?.issues).toEqual([expect.objectContaining({ code: 'LM_INTERNAL', file: boom, message: expect.stringContaining('TypeError: Converting circular structure to JSON') })]);
    expect(ok?.ok).toBe(true);
  });
});
