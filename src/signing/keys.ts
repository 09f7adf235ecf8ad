import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';

/** Characters of the hex sha256 of a public key's DER that name it. */
export const KEY_ID_LENGTH = 16;

/** The id of a public key: the first 16 hex characters of the sha256 of its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, KEY_ID_LENGTH);
}

/** Parse an ed25519 public key from PEM text (SPKI), or say why it is not one. */
export function parsePublicKey(pem: string): { key: KeyObject } | { reason: string } {
  // createPublicKey would derive the public half of a private key: refuse it instead, so a
  // private key is never spread to where only the public one belongs.
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem)) return { reason: 'a private key (list the .pub file; the private key stays with the signer)' };
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    return { reason: `not a PEM public key (${(err as Error).message})` };
  }
  if (key.asymmetricKeyType !== 'ed25519') return { reason: `a ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519` };
  return { key };
}

/** Private key files larger than this are refused before reading (an ed25519 PKCS8 PEM is 119 bytes). */
const MAX_PRIVATE_KEY_BYTES = 64 * 1024;

/**
 * Read the ed25519 private key (PKCS8 PEM) `logomesh sign --key` names. The file is opened
 * once and checked through that descriptor: a regular file that neither its group nor other
 * users can read or write (mode 0600 or 0400, as keygen writes it), since anyone who could
 * read it could sign as its owner. Throws LM_SIGNING.
 */
export function readPrivateKey(file: string): KeyObject {
  const abs = path.resolve(file);
  const fail = (found: string, expected = 'an ed25519 private key (PKCS8 PEM, as logomesh keygen writes)'): never => {
    throw new LogoMeshError('LM_SIGNING', `${abs}: expected ${expected}, found ${found}`, { file: abs, expected, found });
  };
  let text = '';
  let fd: number | undefined;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) fail('not a regular file');
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      fail(`mode ${mode.toString(8).padStart(4, '0')}, which lets ${(mode & 0o070) !== 0 ? 'its group' : 'other users'} read or change it; run 'chmod 600 ${abs}'`, 'a private key file only its owner can read (mode 0600 or 0400)');
    }
    if (st.size > MAX_PRIVATE_KEY_BYTES) fail(`${st.size} bytes, more than a key file holds`);
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof LogoMeshError) throw err;
    fail(`no readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let key: KeyObject | undefined;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (err) {
    fail(`no usable private key (${(err as Error).message})`);
  }
  if (key?.asymmetricKeyType !== 'ed25519') fail(`a ${key?.asymmetricKeyType ?? 'unknown'} key`);
  return key as KeyObject;
}

export interface KeyFiles {
  readonly keyFile: string;
  readonly pubFile: string;
  readonly keyId: string;
}

/**
 * `logomesh keygen <name>`: a new ed25519 key pair in `<name>.key` (PKCS8 PEM, mode 0600)
 * and `<name>.pub` (SPKI PEM). Never overwrites: if either file exists, nothing is written.
 */
export function generateKeyFiles(name: string): KeyFiles {
  const keyFile = path.resolve(`${name}.key`);
  const pubFile = path.resolve(`${name}.pub`);
  const present = [keyFile, pubFile].filter((f) => lstatSync(f, { throwIfNoEntry: false }) !== undefined);
  if (present.length) {
    throw new LogoMeshError('LM_SIGNING', `${present.join(' and ')} already ${present.length > 1 ? 'exist' : 'exists'}; logomesh keygen never overwrites a key: choose another name or move the old files away`, {
      file: present[0],
      expected: 'key files that do not exist yet',
      found: `existing ${present.join(', ')}`,
    });
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  writeExclusive(keyFile, privatePem, 0o600);
  try {
    writeExclusive(pubFile, publicPem, 0o644);
  } catch (err) {
    rmSync(keyFile, { force: true });
    throw err;
  }
  return { keyFile, pubFile, keyId: keyIdOf(publicKey) };
}

/** Create `file` (failing if anything, even a dangling symlink, is there) with `mode`, and write it. */
function writeExclusive(file: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(file, 'wx', mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new LogoMeshError('LM_SIGNING', `${file}: cannot create it (${code})`, { file, expected: 'a new file in an existing, writable folder', found: String(code) });
  }
  try {
    fchmodSync(fd, mode); // the umask only narrows the mode; this makes it exact
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
