import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { LogoMeshError } from '../errors.js';

const run = promisify(execFile);

/** tmpfs sizes are whole pages; a size of 0 would mean "no limit", so the least is one page. */
export const PAGE = 4096;

export function pages(bytes: number): number {
  return Math.max(PAGE, Math.ceil(bytes / PAGE) * PAGE);
}

/**
 * The options every tmpfs of the pool is mounted with: nothing on it runs, is a device or
 * raises privileges, and its root is root's, searchable but not listable by others (mode
 * 0711), so no plugin user can create, rename or link a file in it, or see what is there.
 */
const OPTIONS = 'nosuid,nodev,noexec,mode=0711,uid=0,gid=0';

/**
 * The AppArmor profile confining this process, if any ("docker-default (enforce)"): Docker's
 * default profile denies mount, which otherwise reads as a bare "permission denied".
 */
export function appArmorProfile(read: (file: string) => string = (f) => readFileSync(f, 'utf8')): string | undefined {
  for (const file of ['/proc/self/attr/apparmor/current', ...(existsSync('/sys/module/apparmor') ? ['/proc/self/attr/current'] : [])]) {
    try {
      const label = read(file).replace(/\0/g, '').trim();
      return label && label !== 'unconfined' ? label : undefined;
    } catch {
      // Not this kernel's interface (or no AppArmor): try the next.
    }
  }
  return undefined;
}

async function mountCmd(args: readonly string[], what: string): Promise<void> {
  try {
    await run('mount', [...args], { timeout: 10_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const profile = appArmorProfile();
    const hint = profile ? `; the controller is confined by the AppArmor profile ${profile}, whose rules may deny mount: run it with security_opt apparmor:unconfined (docs/operations.md#shared-memory-under-compose)` : '';
    throw new LogoMeshError('LM_MEMORY_POOL', `${what} failed: ${(e.stderr || e.message).trim().slice(0, 300)}${hint}`, { expected: 'a controller running as root (CAP_SYS_ADMIN) on a kernel with tmpfs; in a container (compose.yaml) also cap_add SYS_ADMIN, and security_opt apparmor:unconfined where the engine applies an AppArmor profile', found: (e.stderr || e.message).trim().slice(0, 200) });
  }
}

/**
 * Mount a tmpfs of `bytes` at `dir`. `shared`: its mounts propagate to where it is
 * bind-mounted with rslave (the plugin containers), so a tmpfs mounted under it later
 * appears in every container that already has the pool.
 */
export async function mountTmpfs(dir: string, bytes: number, source: string, shared: boolean): Promise<void> {
  await mountCmd(['-t', 'tmpfs', '-o', `size=${pages(bytes)},${OPTIONS}`, source, dir], `mounting the pool's tmpfs at ${dir}`);
  if (shared) await mountCmd(['--make-shared', dir], `making ${dir} a shared mount`);
}

/**
 * Set a tmpfs's size: the kernel refuses to write past it (ENOSPC, or SIGBUS for a
 * mapping). Refused by the kernel when smaller than what its files hold (returns false).
 */
export async function resizeTmpfs(dir: string, bytes: number): Promise<boolean> {
  try {
    await run('mount', ['-o', `remount,size=${pages(bytes)}`, dir], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Unmount at once; a mapping still open keeps its pages until it is closed (lazy unmount). */
export async function unmount(dir: string): Promise<void> {
  await run('umount', ['-l', dir], { timeout: 10_000 }).catch(() => undefined);
}

/** The tmpfs mount points at or under `dir`, deepest first, from /proc/self/mountinfo. */
export function tmpfsMountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right || !right.startsWith('tmpfs ')) continue;
    const target = unescapeMountPath(left.split(' ')[4] ?? '');
    if (target === dir || target.startsWith(`${dir}/`)) out.push(target);
  }
  return [...new Set(out)].sort((a, b) => b.length - a.length);
}

/** mountinfo writes a space, tab, newline or backslash in a path as an octal escape. */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Remove a pool that no controller uses any more (`logomesh clean` after a controller was
 * killed and not started again): every tmpfs at or under `dir` unmounted, the folder and the
 * records removed. Returns how many tmpfs were unmounted.
 */
export async function removeLeftPool(dir: string, indexFile: string): Promise<number> {
  const mounts = tmpfsMountsUnder(dir);
  for (const m of mounts) await unmount(m);
  rmSync(dir, { recursive: true, force: true });
  rmSync(indexFile, { force: true });
  return mounts.length;
}
