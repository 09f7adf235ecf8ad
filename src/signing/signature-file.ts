import { canonicalJson, compareCodeUnits, SYMLINK_PREFIX, type FileList } from './digest.js';
import { KEY_ID_LENGTH } from './keys.js';

/**
 * The plugin.sig format. Version 1 lists every file; version 2 (written when the manifest
 * grants the plugin write access inside its own folder) also names those `mutable` paths,
 * which are left out of `files` because the plugin itself changes them.
 */

export type SignatureVersion = 1 | 2;
export const SIGNATURE_ALGORITHM = 'ed25519';
/** plugin.sig files larger than this are refused before parsing. */
export const MAX_SIGNATURE_BYTES = 16 * 1024 * 1024;

/** The contents of plugin.sig. */
export interface SignatureFile {
  readonly version: SignatureVersion;
  readonly algorithm: typeof SIGNATURE_ALGORITHM;
  readonly keyId: string;
  readonly files: FileList;
  /**
   * Version 2 only: the plugin-relative paths left out of `files`, with everything below
   * them: the manifest's write grants inside the plugin folder, sorted.
   */
  readonly mutable?: readonly string[];
  /** base64 ed25519 signature of signedBytes(...). */
  readonly signature: string;
}

/**
 * The bytes a signature covers: the canonical JSON (RFC 8785) in UTF-8 of
 * {version, keyId, files} (version 1) or {version, keyId, files, mutable} (version 2).
 */
export function signedBytes(content: { version: number; keyId: string; files: FileList; mutable?: readonly string[] }): Buffer {
  const { version, keyId, files } = content;
  return Buffer.from(canonicalJson(version === 1 ? { version, keyId, files } : { version, keyId, files, mutable: content.mutable ?? [] }), 'utf8');
}

const HEX_KEY_ID = new RegExp(`^[0-9a-f]{${KEY_ID_LENGTH}}$`);
const SHA256 = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const FIELDS: Readonly<Record<SignatureVersion, readonly string[]>> = {
  1: ['version', 'algorithm', 'keyId', 'files', 'signature'],
  2: ['version', 'algorithm', 'keyId', 'files', 'mutable', 'signature'],
};

/** Parse plugin.sig strictly: exactly the fields of its version, each well-formed. */
export function parseSignatureFile(text: string): { sig: SignatureFile } | { reason: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { reason: `not JSON (${(err as Error).message})` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  if (o.version !== 1 && o.version !== 2) return { reason: `version ${JSON.stringify(o.version)}, expected 1 or 2` };
  const fields = FIELDS[o.version];
  const unknown = Object.keys(o).filter((k) => !fields.includes(k));
  if (unknown.length) return { reason: `unknown field(s) ${unknown.join(', ')}` };
  if (o.algorithm !== SIGNATURE_ALGORITHM) return { reason: `algorithm ${JSON.stringify(o.algorithm)}, expected "${SIGNATURE_ALGORITHM}"` };
  if (typeof o.keyId !== 'string' || !HEX_KEY_ID.test(o.keyId)) return { reason: `keyId ${JSON.stringify(o.keyId)}, expected ${KEY_ID_LENGTH} lowercase hex characters` };
  if (typeof o.files !== 'object' || o.files === null || Array.isArray(o.files)) return { reason: 'files is not an object' };
  for (const [name, value] of Object.entries(o.files)) {
    if (typeof value !== 'string' || !(SHA256.test(value) || value.startsWith(SYMLINK_PREFIX))) {
      return { reason: `files[${JSON.stringify(name)}] is ${JSON.stringify(value)}, expected a sha256 in hex or ${SYMLINK_PREFIX}<target>` };
    }
  }
  if (o.version === 2) {
    const m = o.mutable;
    const ok = Array.isArray(m) && m.every((p, i) => typeof p === 'string' && p !== '' && !p.split('/').includes('..') && !p.startsWith('/') && (i === 0 || compareCodeUnits(m[i - 1] as string, p) < 0));
    if (!ok) return { reason: 'mutable is not a sorted list of distinct plugin-relative paths' };
  }
  if (typeof o.signature !== 'string' || !BASE64.test(o.signature) || Buffer.from(o.signature, 'base64').length !== 64) {
    return { reason: 'signature is not a base64 ed25519 signature (64 bytes)' };
  }
  return { sig: o as unknown as SignatureFile };
}
