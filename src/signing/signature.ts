import { randomBytes, sign, verify, createPublicKey } from 'node:crypto';
import { realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { loadManifest, type LoadedManifest } from '../manifest/index.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import { readRegularFile } from '../read-file.js';
import { canonicalJson, compareFiles, digestFolder, SIGNATURE_FILE, SYMLINK_PREFIX, type FileList, type FolderDigest } from './digest.js';
import { KEY_ID_LENGTH, keyIdOf, readPrivateKey } from './keys.js';

export const SIGNATURE_VERSION = 1;
export const SIGNATURE_ALGORITHM = 'ed25519';
/** plugin.sig files larger than this are refused before parsing. */
export const MAX_SIGNATURE_BYTES = 16 * 1024 * 1024;

/** The contents of plugin.sig. */
export interface SignatureFile {
  readonly version: typeof SIGNATURE_VERSION;
  readonly algorithm: typeof SIGNATURE_ALGORITHM;
  readonly keyId: string;
  readonly files: FileList;
  /** base64 ed25519 signature of signedBytes({version, keyId, files}). */
  readonly signature: string;
}

/** The bytes a signature covers: the canonical JSON (RFC 8785) of {version, keyId, files}, in UTF-8. */
export function signedBytes(content: { version: number; keyId: string; files: FileList }): Buffer {
  return Buffer.from(canonicalJson({ version: content.version, keyId: content.keyId, files: content.files }), 'utf8');
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
  const digest = digest_(loaded.pluginDir, 'LM_SIGNING');
  if (digest.unsignable.length) {
    throw new LogoMeshError('LM_SIGNING', `${loaded.pluginDir}: cannot sign a plugin folder holding ${digest.unsignable.join(', ')}; remove it`, {
      file: loaded.pluginDir,
      expected: 'only regular files, folders and symlinks',
      found: digest.unsignable.join(', '),
    });
  }
  const keyId = keyIdOf(createPublicKey(privateKey));
  const content = { version: SIGNATURE_VERSION, keyId, files: digest.files };
  const sig: SignatureFile = {
    version: SIGNATURE_VERSION,
    algorithm: SIGNATURE_ALGORITHM,
    keyId,
    files: digest.files,
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

/** How a plugin passed verification. */
export type Verification =
  /** No plugin.sig, and the policy does not require one. */
  | { readonly status: 'unsigned' }
  /** Signed by a trusted key; every file is as signed. */
  | { readonly status: 'verified'; readonly keyId: string; readonly key: string; readonly files: number }
  /**
   * Not required, signed by a key the policy does not list: every file is as plugin.sig
   * lists, but who signed it cannot be checked.
   */
  | { readonly status: 'untrusted-key'; readonly keyId: string; readonly files: number };

/**
 * Check a loaded plugin against the policy's signature rules, before anything of it runs.
 * Without plugin.sig: refused if the policy requires signatures. With one: always checked,
 * and refused if it is malformed, a file was added, removed or changed since signing, the
 * manifest is not covered, or the signature does not verify with the trusted key it names;
 * a key the policy does not list is refused only when signatures are required.
 * `policy` defaults to the one LOGOMESH_POLICY names (else NO_POLICY). Throws LM_SIGNATURE.
 */
export function verifyPlugin(loaded: LoadedManifest, policy: Policy = resolvePolicy(undefined)): Verification {
  const dir = loaded.pluginDir;
  const id = loaded.manifest.id;
  const required = policy.signatures.required;
  const refuse = (problems: string[], extra: Record<string, unknown> = {}): never => {
    throw new LogoMeshError('LM_SIGNATURE', `${dir}: plugin ${id} refused: ${problems.join('; ')}`, {
      file: dir,
      plugin: id,
      problems,
      ...(policy.file ? { policy: policy.file } : {}),
      ...extra,
    });
  };
  const sigFile = path.join(dir, SIGNATURE_FILE);
  // Never through a symlink, never a FIFO or device, never more than the limit.
  const read = readRegularFile(sigFile, { maxBytes: MAX_SIGNATURE_BYTES, within: dir, noSymlink: true });
  if (!read.ok && read.failure === 'missing' && read.found === 'nothing') {
    if (required) refuse([`unsigned: there is no ${SIGNATURE_FILE}, and the policy ${policy.file ?? '(none)'} requires signatures (sign it with logomesh sign)`]);
    return { status: 'unsigned' };
  }
  if (!read.ok) return refuse([`bad signature: ${SIGNATURE_FILE} is not ${read.expected}: found ${read.found}`]);
  const parsed = parseSignatureFile(read.bytes.toString('utf8'));
  if ('reason' in parsed) return refuse([`bad signature: ${SIGNATURE_FILE} is malformed: ${parsed.reason}`]);
  const sig = parsed.sig;

  const problems: string[] = [];
  const digest = digest_(dir, 'LM_SIGNATURE');
  if (digest.unsignable.length) problems.push(`files that cannot be signed: ${digest.unsignable.join(', ')}`);
  const changes = compareFiles(sig.files, digest.files);
  const list = [
    ...changes.changed.map((f) => `${f} changed`),
    ...changes.added.map((f) => `${f} added`),
    ...changes.removed.map((f) => `${f} removed`),
  ];
  if (list.length) problems.push(`files changed since signing: ${list.join(', ')}`);
  const manifestName = path.basename(loaded.file);
  const signedManifest = Object.prototype.hasOwnProperty.call(sig.files, manifestName) ? sig.files[manifestName] : undefined;
  if (signedManifest === undefined) problems.push(`the manifest ${manifestName} is not among the signed files`);
  else if (signedManifest.startsWith(SYMLINK_PREFIX)) problems.push(`the manifest ${manifestName} is a symlink, so its contents are not covered by the signature`);

  // Key ids are short: should two trusted keys share one, each of them is tried.
  const candidates = policy.signatures.trustedKeys.filter((k) => k.keyId === sig.keyId);
  const bytes = signedBytes(sig);
  const trusted = candidates.find((k) => verify(null, bytes, k.key, Buffer.from(sig.signature, 'base64')));
  if (candidates.length === 0) {
    if (required) problems.push(`unknown key id ${sig.keyId}: not one of the policy's trusted keys`);
  } else if (!trusted) {
    problems.push(`bad signature: it does not verify with the trusted key ${sig.keyId} (${candidates.map((k) => k.source).join(', ')})`);
  }
  if (problems.length) refuse(problems, { keyId: sig.keyId, ...changes });
  const files = Object.keys(sig.files).length;
  return trusted ? { status: 'verified', keyId: sig.keyId, key: trusted.source, files } : { status: 'untrusted-key', keyId: sig.keyId, files };
}

/** The folder's digest; a file that vanishes or cannot be read while hashing becomes a coded error. */
function digest_(dir: string, code: 'LM_SIGNING' | 'LM_SIGNATURE'): FolderDigest {
  try {
    return digestFolder(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new LogoMeshError(code, `${dir}: cannot read every file of the plugin folder (${e.code ?? e.message}${e.path ? ` on ${e.path}` : ''})`, {
      file: e.path ?? dir,
      expected: 'a plugin folder whose files can all be read',
      found: e.code ?? e.message,
    });
  }
}

const HEX_KEY_ID = new RegExp(`^[0-9a-f]{${KEY_ID_LENGTH}}$`);
const SHA256 = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const FIELDS = ['version', 'algorithm', 'keyId', 'files', 'signature'];

/** Parse plugin.sig strictly: exactly the fields of SignatureFile, each well-formed. */
export function parseSignatureFile(text: string): { sig: SignatureFile } | { reason: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { reason: `not JSON (${(err as Error).message})` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !FIELDS.includes(k));
  if (unknown.length) return { reason: `unknown field(s) ${unknown.join(', ')}` };
  if (o.version !== SIGNATURE_VERSION) return { reason: `version ${JSON.stringify(o.version)}, expected ${SIGNATURE_VERSION}` };
  if (o.algorithm !== SIGNATURE_ALGORITHM) return { reason: `algorithm ${JSON.stringify(o.algorithm)}, expected "${SIGNATURE_ALGORITHM}"` };
  if (typeof o.keyId !== 'string' || !HEX_KEY_ID.test(o.keyId)) return { reason: `keyId ${JSON.stringify(o.keyId)}, expected ${KEY_ID_LENGTH} lowercase hex characters` };
  if (typeof o.files !== 'object' || o.files === null || Array.isArray(o.files)) return { reason: 'files is not an object' };
  for (const [name, value] of Object.entries(o.files)) {
    if (typeof value !== 'string' || !(SHA256.test(value) || value.startsWith(SYMLINK_PREFIX))) {
      return { reason: `files[${JSON.stringify(name)}] is ${JSON.stringify(value)}, expected a sha256 in hex or ${SYMLINK_PREFIX}<target>` };
    }
  }
  if (typeof o.signature !== 'string' || !BASE64.test(o.signature) || Buffer.from(o.signature, 'base64').length !== 64) {
    return { reason: 'signature is not a base64 ed25519 signature (64 bytes)' };
  }
  return { sig: o as unknown as SignatureFile };
}
