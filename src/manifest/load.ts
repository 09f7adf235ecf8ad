import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError, ManifestRejectedError, type ManifestIssue } from '../errors.js';
import { parseManifestSource } from './source.js';
import { show, validateAgainstSchema } from './schema.js';
import { checkSemantics } from './semantics.js';
import type { LoadedManifest, Manifest } from './types.js';

export const MANIFEST_NAMES = ['plugin.yaml', 'plugin.yml', 'plugin.json'] as const;
/** Larger manifests are refused before parsing: no real manifest is near this. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

/** Find the manifest file for a plugin folder or a manifest path. */
export function findManifest(target: string): string {
  const abs = path.resolve(target);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: no such file or folder`, {
      file: abs,
      expected: 'a plugin folder or a manifest file',
      found: 'nothing',
    });
  }
  if (st.isFile()) return abs;
  const present = MANIFEST_NAMES.filter((n) => existsSync(path.join(abs, n)));
  if (present.length === 1) return path.join(abs, present[0] as string);
  throw new LogoMeshError(
    'LM_MANIFEST_NOT_FOUND',
    `${abs}: expected exactly one of ${MANIFEST_NAMES.join(', ')} in the plugin folder, found ${present.length ? present.join(' and ') : 'none'}`,
    { file: abs, expected: `one of ${MANIFEST_NAMES.join(', ')}`, found: present.length ? present.join(', ') : 'none' },
  );
}

/**
 * Load, validate and freeze a manifest. Throws ManifestRejectedError listing every issue,
 * each with its code, the file, the JSON pointer, line and column, expected and found.
 */
export function loadManifest(target: string): LoadedManifest {
  const file = findManifest(target);
  const reject = (issues: Omit<ManifestIssue, 'file'>[]): never => {
    throw new ManifestRejectedError(file, issues.map((i) => ({ ...i, file })));
  };

  const size = statSync(file).size;
  if (size > MAX_MANIFEST_BYTES) {
    reject([{ code: 'LM_MANIFEST_PARSE', path: '', expected: `at most ${MAX_MANIFEST_BYTES} bytes`, found: `${size} bytes`, message: `expected at most ${MAX_MANIFEST_BYTES} bytes, found ${size} bytes` }]);
  }
  // Read once: the bytes hashed into fileSha256 are exactly the bytes parsed.
  const bytes = readFileSync(file);
  const fileSha256 = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const source = parseManifestSource(text);
  if (source.errors.length === 0 && file.endsWith('.json')) strictJson(text, reject);
  if (source.errors.length > 0) {
    reject(
      source.errors.map((e) => ({
        code: 'LM_MANIFEST_PARSE' as const,
        path: e.path,
        line: e.line,
        column: e.column,
        expected: 'well-formed YAML or JSON with unique keys',
        found: e.message,
        message: e.message,
      })),
    );
  }
  const data = source.value;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    reject([{ code: 'LM_MANIFEST_PARSE', path: '', ...(source.locate('') ?? { line: 1, column: 1 }), expected: 'a mapping of manifest fields', found: show(data), message: `expected a mapping of manifest fields, found ${show(data)}` }]);
  }

  const pluginDir = realpathSync(path.dirname(file));
  const issues = validateAgainstSchema(data);
  const semantic = checkSemantics(data, pluginDir, realpathSync(file));
  const all = [...issues, ...semantic.issues].map((i) => ({ ...source.locate(i.path), ...i }));
  all.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  if (all.length > 0) reject(all);

  const manifest = deepFreeze(data as Manifest);
  return Object.freeze({
    manifest,
    file,
    pluginDir,
    grantedPaths: Object.freeze(semantic.grantedPaths.map((g) => Object.freeze(g))),
    hash: manifestHash(manifest),
    fileSha256,
  });
}

/** sha256 over the canonical (key-sorted) JSON of the validated manifest. */
export function manifestHash(manifest: Manifest): string {
  return createHash('sha256').update(canonicalJson(manifest)).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * YAML accepts what JSON does not (comments, trailing commas, single quotes), so a
 * plugin.json is also held to JSON itself. The YAML parse still gives duplicate keys and
 * line numbers.
 */
function strictJson(text: string, reject: (issues: Omit<ManifestIssue, 'file'>[]) => never): void {
  try {
    JSON.parse(text);
  } catch (err) {
    const reason = (err as Error).message;
    const at = /position (\d+)/.exec(reason);
    const offset = at ? Number(at[1]) : 0;
    const before = text.slice(0, offset).split('\n');
    reject([{ code: 'LM_MANIFEST_PARSE', path: '', line: before.length, column: (before.at(-1)?.length ?? 0) + 1, expected: 'strict JSON (no comments, trailing commas or single quotes)', found: reason, message: `expected strict JSON, found: ${reason}` }]);
  }
}
