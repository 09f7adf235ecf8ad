import { randomBytes, sign, verify, createPublicKey } from 'node:crypto';
import { realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { loadManifest, type LoadedManifest } from '../manifest/index.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import { readRegularFile } from '../read-file.js';
import { compareCodeUnits, compareFiles, digestFolder, digestFolderAsync, MAX_DIGEST_BYTES, MAX_DIGEST_ENTRIES, SIGNATURE_FILE, SYMLINK_PREFIX, type FileList, type FolderDigest } from './digest.js';
import { keyIdOf, readPrivateKey } from './keys.js';
import { MAX_SIGNATURE_BYTES, parseSignatureFile, SIGNATURE_ALGORITHM, signedBytes, type SignatureFile } from './signature-file.js';

export { MAX_SIGNATURE_BYTES, parseSignatureFile, SIGNATURE_ALGORITHM, signedBytes, type SignatureFile, type SignatureVersion } from './signature-file.js';

/**
 * The paths of a plugin folder the plugin itself writes: its manifest's write grants inside
 * the folder (their real relative paths), sorted. A signature leaves them out as `mutable`,
 * so that the plugin's own output never breaks it, and nothing below them is verified: what
 * the plugin reads from there is data it could have written itself.
 */
export function mutablePaths(loaded: LoadedManifest): string[] {
  const rel = loaded.grantedPaths.filter((g) => g.writable && g.relative !== '.').map((g) => g.relative.split(path.sep).join('/'));
  return [...new Set(rel)].sort(compareCodeUnits);
}

export interface SignResult {
  readonly sigFile: string;
  readonly keyId: string;
  readonly files: number;
}

/**
 * `logomesh sign <plugin-dir> --key <file>`: validate the plugin's manifest, hash every
 * file of its folder and write `<plugin-dir>/plugin.sig`. Throws LM_SIGNING.
 */
export function signPlugin(target: string, keyFile: string): SignResult {
  const dir = path.resolve(target);
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) {
    throw new LogoMeshError('LM_SIGNING', `${dir}: logomesh sign takes a plugin folder`, { file: dir, expected: 'a plugin folder', found: st ? 'a file' : 'nothing' });
  }
  const loaded = loadManifest(dir); // a rejected manifest throws its own codes: nothing invalid is signed
  const privateKey = readPrivateKey(keyFile);
  const realKey = realpathSync(path.resolve(keyFile));
  if (realKey.startsWith(`${loaded.pluginDir}${path.sep}`)) {
    throw new LogoMeshError('LM_SIGNING', `${realKey}: the private key is inside the plugin folder ${loaded.pluginDir}; it would be signed and shipped with the plugin. Keep keys outside plugin folders`, {
      file: realKey,
      expected: 'a key file outside the plugin folder',
      found: 'a key file inside it',
    });
  }
  const mutable = mutablePaths(loaded);
  const digest = digest_(loaded.pluginDir, 'LM_SIGNING', () => digestFolder(loaded.pluginDir, { exclude: mutable }));
  if (digest.tooLarge) {
    throw new LogoMeshError('LM_SIGNING', `${loaded.pluginDir}: cannot sign a plugin folder holding ${digest.tooLarge} (its mutable paths left out); keep large data outside plugin folders`, {
      file: loaded.pluginDir,
      expected: `at most ${MAX_DIGEST_BYTES} bytes in at most ${MAX_DIGEST_ENTRIES} files and folders`,
      found: digest.tooLarge,
    });
  }
  if (digest.unsignable.length) {
    throw new LogoMeshError('LM_SIGNING', `${loaded.pluginDir}: cannot sign a plugin folder holding ${digest.unsignable.join(', ')}; remove it`, {
      file: loaded.pluginDir,
      expected: 'only regular files, folders and symlinks',
      found: digest.unsignable.join(', '),
    });
  }
  const keyId = keyIdOf(createPublicKey(privateKey));
  // Version 1 unless there is something mutable: plugins without write grants inside their
  // folder keep the format every earlier LogoMesh reads.
  const content = mutable.length ? { version: 2 as const, keyId, files: digest.files, mutable } : { version: 1 as const, keyId, files: digest.files };
  const sig: SignatureFile = {
    version: content.version,
    algorithm: SIGNATURE_ALGORITHM,
    keyId,
    files: digest.files,
    ...(mutable.length ? { mutable } : {}),
    signature: sign(null, signedBytes(content), privateKey).toString('base64'),
  };
  const sigFile = path.join(loaded.pluginDir, SIGNATURE_FILE);
  // Written aside and renamed over: a reader never sees half a file, and a symlink named
  // plugin.sig is replaced rather than followed.
  const tmp = path.join(loaded.pluginDir, `.${SIGNATURE_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, `${JSON.stringify(sig, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
    renameSync(tmp, sigFile);
  } catch (err) {
    rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new LogoMeshError('LM_SIGNING', `${sigFile}: cannot write it (${code})`, { file: sigFile, expected: 'a writable plugin folder', found: String(code) });
  }
  return { sigFile, keyId, files: Object.keys(digest.files).length };
}

/** What a signature vouches for: every file but the mutable paths, as signed. */
export interface SignedContent {
  readonly files: FileList;
  readonly mutable: readonly string[];
}

/** How a plugin passed verification. */
export type Verification =
  /** No plugin.sig, and the policy does not require one. */
  | { readonly status: 'unsigned' }
  /** Signed by a trusted key; every file is as signed. */
  | { readonly status: 'verified'; readonly keyId: string; readonly key: string; readonly files: number; readonly signed: SignedContent }
  /**
   * Not required, signed by a key the policy does not list: every file is as plugin.sig
   * lists, but who signed it cannot be checked.
   */
  | { readonly status: 'untrusted-key'; readonly keyId: string; readonly files: number; readonly signed: SignedContent };

/** What a verification vouches for, if the plugin is signed. */
export function signedContentOf(v: Verification): SignedContent | undefined {
  return v.status === 'unsigned' ? undefined : v.signed;
}

/**
 * Check a loaded plugin against the policy's signature rules, before anything of it runs.
 * Without plugin.sig: refused if the policy requires signatures. With one: always checked,
 * and refused if it is malformed, a file was added, removed or changed since signing, the
 * manifest that was loaded (the exact bytes parsed) is not the one signed, the mutable
 * paths are not the manifest's write grants, or the signature does not verify with the
 * trusted key it names; a key the policy does not list is refused only when signatures are
 * required. Synchronous, for load time; verifyPluginAsync hashes without holding the event
 * loop. `policy` defaults to the one LOGOMESH_POLICY names (else NO_POLICY). Throws
 * LM_SIGNATURE.
 */
export function verifyPlugin(loaded: LoadedManifest, policy: Policy = resolvePolicy(undefined)): Verification {
  const read = readSignature(loaded, policy);
  if ('status' in read) return read;
  const exclude = read.sig.mutable ?? [];
  return judge(loaded, policy, read.sig, digest_(loaded.pluginDir, 'LM_SIGNATURE', () => digestFolder(loaded.pluginDir, { exclude })));
}

/** verifyPlugin, with the files hashed a chunk at a time between turns of the event loop (re-verification before a restart). */
export async function verifyPluginAsync(loaded: LoadedManifest, policy: Policy = resolvePolicy(undefined)): Promise<Verification> {
  const read = readSignature(loaded, policy);
  if ('status' in read) return read;
  const exclude = read.sig.mutable ?? [];
  return judge(loaded, policy, read.sig, await digestAsync_(loaded.pluginDir, () => digestFolderAsync(loaded.pluginDir, { exclude })));
}

function refusal(loaded: LoadedManifest, policy: Policy, problems: string[], extra: Record<string, unknown> = {}): LogoMeshError {
  const dir = loaded.pluginDir;
  const id = loaded.manifest.id;
  return new LogoMeshError('LM_SIGNATURE', `${dir}: plugin ${id} refused: ${problems.join('; ')}`, {
    file: dir,
    plugin: id,
    problems,
    ...(policy.file ? { policy: policy.file } : {}),
    ...extra,
  });
}

/** plugin.sig parsed, or the verdict when there is none. Throws LM_SIGNATURE for a bad one. */
function readSignature(loaded: LoadedManifest, policy: Policy): { sig: SignatureFile } | { status: 'unsigned' } {
  const sigFile = path.join(loaded.pluginDir, SIGNATURE_FILE);
  // Never through a symlink, never a FIFO or device, never more than the limit.
  const read = readRegularFile(sigFile, { maxBytes: MAX_SIGNATURE_BYTES, within: loaded.pluginDir, noSymlink: true });
  if (!read.ok && read.failure === 'missing' && read.found === 'nothing') {
    if (policy.signatures.required) throw refusal(loaded, policy, [`unsigned: there is no ${SIGNATURE_FILE}, and the policy ${policy.file ?? '(none)'} requires signatures (sign it with logomesh sign)`]);
    return { status: 'unsigned' };
  }
  if (!read.ok) throw refusal(loaded, policy, [`bad signature: ${SIGNATURE_FILE} is not ${read.expected}: found ${read.found}`]);
  const parsed = parseSignatureFile(read.bytes.toString('utf8'));
  if ('reason' in parsed) throw refusal(loaded, policy, [`bad signature: ${SIGNATURE_FILE} is malformed: ${parsed.reason}`]);
  return parsed;
}

/** The verdict on a signature and the folder's digest. Throws LM_SIGNATURE naming every problem. */
function judge(loaded: LoadedManifest, policy: Policy, sig: SignatureFile, digest: FolderDigest): Verification {
  const problems: string[] = [];
  if (digest.tooLarge) problems.push(`the plugin folder holds ${digest.tooLarge} (its mutable paths left out), too much to verify; keep large data outside plugin folders`);
  if (digest.unsignable.length) problems.push(`files that cannot be signed: ${digest.unsignable.join(', ')}`);
  const changes = digest.tooLarge ? { added: [], removed: [], changed: [] } : compareFiles(sig.files, digest.files);
  const list = [...changes.changed.map((f) => `${f} changed`), ...changes.added.map((f) => `${f} added`), ...changes.removed.map((f) => `${f} removed`)];
  if (list.length) problems.push(`files changed since signing: ${list.join(', ')}`);

  const manifestName = path.basename(loaded.file);
  const signedManifest = Object.prototype.hasOwnProperty.call(sig.files, manifestName) ? sig.files[manifestName] : undefined;
  if (signedManifest === undefined) problems.push(`the manifest ${manifestName} is not among the signed files`);
  else if (signedManifest.startsWith(SYMLINK_PREFIX)) problems.push(`the manifest ${manifestName} is a symlink, so its contents are not covered by the signature`);
  else if (signedManifest !== loaded.fileSha256) {
    // What counts is what was parsed, not what is on disk now: a manifest swapped after it
    // was read (and perhaps swapped back) is refused here even if the folder looks signed.
    problems.push(`the manifest that was loaded (${manifestName}, sha256 ${loaded.fileSha256.slice(0, 16)}) is not the one signed (sha256 ${signedManifest.slice(0, 16)}): it was changed after signing, or replaced while it was being loaded`);
  }
  const mutable = sig.mutable ?? [];
  const declared = mutablePaths(loaded);
  if (sig.version === 2 && mutable.join('\0') !== declared.join('\0')) {
    problems.push(`the signature's mutable paths (${mutable.join(', ') || 'none'}) are not the manifest's write grants inside the folder (${declared.join(', ') || 'none'})`);
  }

  // Key ids are short: should two trusted keys share one, each of them is tried.
  const candidates = policy.signatures.trustedKeys.filter((k) => k.keyId === sig.keyId);
  const bytes = signedBytes(sig);
  const trusted = candidates.find((k) => verify(null, bytes, k.key, Buffer.from(sig.signature, 'base64')));
  if (candidates.length === 0) {
    if (policy.signatures.required) problems.push(`unknown key id ${sig.keyId}: not one of the policy's trusted keys`);
  } else if (!trusted) {
    problems.push(`bad signature: it does not verify with the trusted key ${sig.keyId} (${candidates.map((k) => k.source).join(', ')})`);
  }
  if (problems.length) throw refusal(loaded, policy, problems, { keyId: sig.keyId, ...changes });
  const files = Object.keys(sig.files).length;
  const signed: SignedContent = { files: sig.files, mutable };
  return trusted ? { status: 'verified', keyId: sig.keyId, key: trusted.source, files, signed } : { status: 'untrusted-key', keyId: sig.keyId, files, signed };
}

function unreadable(dir: string, code: 'LM_SIGNING' | 'LM_SIGNATURE', err: unknown): LogoMeshError {
  const e = err as NodeJS.ErrnoException;
  return new LogoMeshError(code, `${dir}: cannot read every file of the plugin folder (${e.code ?? e.message}${e.path ? ` on ${e.path}` : ''})`, {
    file: e.path ?? dir,
    expected: 'a plugin folder whose files can all be read',
    found: e.code ?? e.message,
  });
}

/** The folder's digest; a file that vanishes or cannot be read while hashing becomes a coded error. */
function digest_(dir: string, code: 'LM_SIGNING' | 'LM_SIGNATURE', fn: () => FolderDigest): FolderDigest {
  try {
    return fn();
  } catch (err) {
    throw unreadable(dir, code, err);
  }
}

async function digestAsync_(dir: string, fn: () => Promise<FolderDigest>): Promise<FolderDigest> {
  try {
    return await fn();
  } catch (err) {
    throw unreadable(dir, 'LM_SIGNATURE', err);
  }
}
