import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { LoadedManifest, Manifest } from '../../manifest/types.js';
import type { Policy } from '../../policy/policy.js';
import { canonicalJson, compareFiles, digestFolder, SIGNATURE_FILE, type FileList } from '../../signing/index.js';
import { mutablePaths } from '../../signing/signature.js';

/**
 * What a plugin was deployed from, so that `apply` can tell whether it changed and say
 * what: the validated manifest, every file of its folder (but those the plugin writes),
 * its `plugin.sig`, and the operator policy in force. Interpreted plugins read their code
 * from the folder at start, compiled ones are built from it: any file counts.
 */
export interface Fingerprint {
  readonly manifestHash: string;
  readonly manifest: Manifest;
  readonly files: FileList;
  /** sha256 of plugin.sig, absent when the folder has none. */
  readonly signature?: string;
  /** sha256 of the policy file's bytes, '' without a policy file. */
  readonly policy: string;
  /** Why the folder's files could not all be listed (too large): any apply then counts it as changed. */
  readonly unlisted?: string;
}

/** Folders whose files never change what runs: version control and Python's byte-code caches. */
const SKIPPED = new Set(['.git', '__pycache__']);

export function fingerprintOf(loaded: LoadedManifest, policyHash: string): Fingerprint {
  const digest = digestFolder(loaded.pluginDir, { exclude: mutablePaths(loaded) });
  // The manifest counts by what it says (manifestHash), not by its bytes: a comment changes nothing.
  const manifestFile = path.relative(loaded.pluginDir, loaded.file).split(path.sep).join('/');
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [rel, hash] of Object.entries(digest.files)) if (rel !== manifestFile && !rel.split('/').some((p) => SKIPPED.has(p))) files[rel] = hash;
  const signature = sha256File(path.join(loaded.pluginDir, SIGNATURE_FILE));
  return {
    manifestHash: loaded.hash,
    manifest: loaded.manifest,
    files,
    policy: policyHash,
    ...(signature ? { signature } : {}),
    ...(digest.tooLarge ? { unlisted: digest.tooLarge } : {}),
  };
}

/** The sha256 of the policy file in force, '' when there is none. Throws nothing: an unreadable file hashes as its error. */
export function policyHashOf(policy: Policy): string {
  if (!policy.file) return '';
  return sha256File(policy.file) ?? `unreadable:${policy.file}`;
}

/**
 * What changed from `before` to `after`, in words, most telling first: the manifest fields
 * (`manifest: resources, coordination`), the files (`files: main.py changed, util.py
 * added`), the signature, the policy. Empty when nothing did.
 */
export function changesBetween(before: Fingerprint, after: Fingerprint): string[] {
  const what: string[] = [];
  if (before.manifestHash !== after.manifestHash) what.push(`manifest: ${changedFields(before.manifest, after.manifest).join(', ') || 'reformatted'}`);
  const files = compareFiles(before.files, after.files);
  const listed = [...files.changed.map((f) => `${f} changed`), ...files.added.map((f) => `${f} added`), ...files.removed.map((f) => `${f} removed`)];
  if (listed.length) what.push(`files: ${listed.slice(0, 8).join(', ')}${listed.length > 8 ? ` and ${listed.length - 8} more` : ''}`);
  if (after.unlisted) what.push(`files: not all listed (${after.unlisted})`);
  if (before.signature !== after.signature) what.push(after.signature ? (before.signature ? 'signature' : 'signature added') : 'signature removed');
  if (before.policy !== after.policy) what.push('policy');
  return what;
}

/** The manifest fields that differ, to the second level (`resources.maxMemoryMB`). */
function changedFields(a: Manifest, b: Manifest): string[] {
  const out: string[] = [];
  const ra = a as unknown as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  for (const key of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
    const x = ra[key];
    const y = rb[key];
    if (canonicalJson(x) === canonicalJson(y)) continue;
    if (isPlain(x) && isPlain(y)) {
      for (const sub of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) if (canonicalJson(x[sub]) !== canonicalJson(y[sub])) out.push(`${key}.${sub}`);
    } else out.push(key);
  }
  return out;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sha256File(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}
