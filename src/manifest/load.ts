import { createHash } from 'node:crypto';
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { LogoMeshError, ManifestRejectedError, MAX_ISSUES, type ErrorCode, type ManifestIssue } from '../errors.js';
import { decodeUtf8, readRegularFile, type ReadFailure } from '../read-file.js';
import { parseManifestSource } from './source.js';
import { show, validateAgainstSchema } from './schema.js';
import { checkSemantics } from './semantics.js';
import type { LoadedManifest, Manifest } from './types.js';

export const MANIFEST_NAMES = ['plugin.yaml', 'plugin.yml', 'plugin.json'] as const;
/** Larger manifests are refused before parsing: no real manifest is near this. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

type Issue = Omit<ManifestIssue, 'file'>;

/**
 * The manifest file of a plugin folder, or `target` itself when it is not a folder (a
 * manifest file given directly; what it really is, loadManifest finds out safely).
 */
export function findManifest(target: string): string {
  const abs = path.resolve(target);
  const st = statOf(abs, statSync) ?? statOf(abs, lstatSync); // a dangling symlink is still something
  if (!st) {
    const code = errnoOf(() => lstatSync(abs));
    const found = code === 'ENOENT' || code === 'ENOTDIR' ? 'nothing' : `a path that cannot be examined (${code})`;
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: ${found === 'nothing' ? 'no such file or folder' : found}`, {
      file: abs,
      expected: 'a plugin folder or a manifest file',
      found,
    });
  }
  if (!st.isDirectory()) return abs;
  // lstat: a dangling symlink named plugin.yaml counts, so it is reported rather than skipped.
  const present = MANIFEST_NAMES.filter((n) => statOf(path.join(abs, n), lstatSync) !== undefined);
  if (present.length === 1) return path.join(abs, present[0] as string);
  throw new LogoMeshError(
    'LM_MANIFEST_NOT_FOUND',
    `${abs}: expected exactly one of ${MANIFEST_NAMES.join(', ')} in the plugin folder, found ${present.length ? present.join(' and ') : 'none'}`,
    { file: abs, expected: `one of ${MANIFEST_NAMES.join(', ')}`, found: present.length ? present.join(', ') : 'none' },
  );
}

function statOf(p: string, how: typeof statSync | typeof lstatSync): Stats | undefined {
  try {
    return how(p);
  } catch {
    return undefined;
  }
}

function errnoOf(call: () => unknown): string {
  try {
    call();
    return 'ENOENT';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

/**
 * Load, validate and freeze a manifest. Throws ManifestRejectedError listing every issue,
 * each with its code, the file, the JSON pointer, line and column, expected and found.
 * The file is read once, and only if it is a regular file inside the plugin folder.
 */
export function loadManifest(target: string): LoadedManifest {
  const file = findManifest(target);
  const reject = (issues: Issue[]): never => {
    throw new ManifestRejectedError(file, issues.map((i) => ({ ...i, file })));
  };
  const refuse = (code: ErrorCode, expected: string, found: string): never =>
    reject([{ code, path: '', expected, found, message: `expected ${expected}, found ${found}` }]);

  let pluginDir: string;
  try {
    pluginDir = realpathSync(path.dirname(file));
  } catch (err) {
    return refuse('LM_MANIFEST_FILE', 'a plugin folder that can be resolved', `${path.dirname(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const read = readRegularFile(file, { maxBytes: MAX_MANIFEST_BYTES, within: pluginDir });
  if (!read.ok) return refuse(READ_FAILURE_CODE[read.failure], read.expected, read.found);
  // A second name of the manifest could sit in a folder the plugin may write (a write
  // grant, an operator's host path) and rewrite it for the next load; no manifest needs one.
  if (read.nlink > 1) {
    refuse('LM_MANIFEST_FILE', 'a manifest file with one name (copy it rather than hard-linking it)', `a file with ${read.nlink} names (hard links)`);
  }
  // Read once: the bytes hashed into fileSha256 are exactly the bytes parsed.
  const fileSha256 = createHash('sha256').update(read.bytes).digest('hex');
  const decoded = decodeUtf8(read.bytes);
  if (!decoded.ok) return refuse('LM_MANIFEST_PARSE', 'UTF-8 text', decoded.found);

  const source = parseManifestSource(decoded.text, { json: file.endsWith('.json') });
  if (source.errors.length > 0) {
    reject(source.errors.map((e) => ({ code: 'LM_MANIFEST_PARSE' as const, path: e.path, line: e.line, column: e.column, expected: e.expected, found: e.found, message: e.message })));
  }
  const data = source.value;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    reject([{ code: 'LM_MANIFEST_PARSE', path: '', ...(source.locate('') ?? { line: 1, column: 1 }), expected: 'a mapping of manifest fields', found: show(data), message: `expected a mapping of manifest fields, found ${show(data)}` }]);
  }

  const issues = validateAgainstSchema(data);
  const semantic = checkSemantics(data, pluginDir, read.real);
  const found = [...issues, ...semantic.issues];
  // Locating an issue walks its mapping, so thousands of unknown keys would cost seconds;
  // no real manifest has MAX_ISSUES problems, and the first ones show the pattern.
  const all = found.slice(0, MAX_ISSUES).map((i) => ({ ...source.locate(i.path), ...i }));
  all.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  if (found.length > MAX_ISSUES) {
    const more = `${found.length - MAX_ISSUES} more issue(s) like these`;
    all.push({ code: found[MAX_ISSUES]?.code ?? 'LM_MANIFEST_INVALID', path: '', expected: 'a manifest with fewer problems', found: more, message: more });
  }
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

/** Size stays a parse error, as it always was; a file that is gone is not found. */
const READ_FAILURE_CODE: Record<ReadFailure, ErrorCode> = {
  missing: 'LM_MANIFEST_NOT_FOUND',
  'too-large': 'LM_MANIFEST_PARSE',
  symlink: 'LM_MANIFEST_FILE',
  outside: 'LM_MANIFEST_FILE',
  'not-regular': 'LM_MANIFEST_FILE',
  unreadable: 'LM_MANIFEST_FILE',
  changed: 'LM_MANIFEST_FILE',
};

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
