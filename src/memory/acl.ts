import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { LogoMeshError } from '../errors.js';

const run = promisify(execFile);

/** One user's rights on a segment file. */
export interface AclEntry {
  readonly uid: number;
  readonly write: boolean;
}

/**
 * Replace a segment file's whole POSIX ACL: its owner (root, the controller) reads and
 * writes, its group and others nothing, and each listed plugin user reads, or reads and
 * writes. The kernel checks it at every open: a user not listed gets EACCES, a reader gets
 * EACCES on an open for writing (and so cannot truncate or map it writable). The file's
 * owner is never a plugin, so no plugin can change its mode or ACL.
 */
export async function setAcl(file: string, entries: readonly AclEntry[]): Promise<void> {
  const spec = ['u::rw-', 'g::---', 'o::---', ...entries.map((e) => `u:${e.uid}:${e.write ? 'rw-' : 'r--'}`), `m::${entries.some((e) => e.write) ? 'rw-' : entries.length ? 'r--' : '---'}`].join(',');
  try {
    await run('setfacl', ['--set', spec, file], { timeout: 10_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const missing = e.code === 'ENOENT';
    throw new LogoMeshError('LM_MEMORY_POOL', missing ? "setfacl is not installed (Debian's acl package); the pool cannot give segments to plugins" : `setting the ACL of ${file} failed: ${(e.stderr || e.message).trim().slice(0, 300)}`, { expected: "setfacl (Debian's acl package) on a filesystem with POSIX ACLs", found: missing ? 'no setfacl on PATH' : (e.stderr || e.message).trim().slice(0, 200) });
  }
}
