import { spawn } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';
import { holdRealPath, PathChangedError, type HeldPath } from './host-paths.js';
import { mountHelper, MountHelperError } from './mount-helper.js';

/**
 * The engine takes a bind mount's source as a path, and resolves it itself when the
 * container starts: a path checked before that can be swapped for a symlink in between.
 * So the controller mounts what it checked, from the descriptor it holds, onto a folder of
 * its own (a fresh 0700 folder, `lm-mounts-<pid>-*` in the temp folder), and gives the
 * engine that folder: nobody else can change what it names. A write grant's mount is also
 * made nosuid, nodev and noexec here (the engine's own bind mounts cannot be), and the
 * engine's bind keeps those flags. The staging mounts are taken away once the container has
 * started: the container keeps its own.
 *
 * Staging needs root in the host's mount namespace (the engine's). Elsewhere (a controller
 * in a container, a non-root one) paths are given to the engine as they were checked and
 * checked again right before the start: the window is narrow, not closed.
 */

type StagingMode = { readonly staged: true } | { readonly staged: false; readonly reason: string };

/** The inode number of the host's initial PID namespace (PROC_PID_INIT_INO): the engine's. */
const INITIAL_PID_NS = 'pid:[4026531836]';
/** CAP_SYS_ADMIN's bit in CapEff: mount(2) needs it. */
const CAP_SYS_ADMIN = 21n;

function hasSysAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n : false;
}

/**
 * Does this process mount in a mount namespace other than the host's (the engine's), where what it
 * mounts stays its own? The controller image says so (`LOGOMESH_CONTAINER=1`,
 * images/controller/Dockerfile); elsewhere init's mount namespace is compared with ours where it
 * can be read. (`/.dockerenv` is no sign: a host or VM made from a container image keeps it.)
 */
export function ownMountNamespace(env: NodeJS.ProcessEnv = process.env, readNs: (p: string) => string = readlinkSync): boolean {
  if (env.LOGOMESH_CONTAINER === '1') return true;
  try {
    return readNs('/proc/1/ns/mnt') !== readNs('/proc/self/ns/mnt');
  } catch {
    // Init's cannot be read: a mount the engine does not see fails safe for staging (it
    // mounts an empty folder, or finds none).
    return false;
  }
}

let mode: StagingMode | undefined;

/** Can this process stage mounts where the engine sees them? Decided once per process. */
function stagingMode(): StagingMode {
  mode ??= (() => {
    if (process.platform !== 'linux') return { staged: false, reason: 'not Linux' };
    if (process.getuid?.() !== 0) return { staged: false, reason: 'the controller does not run as root' };
    // Root without it (a controller in a container that shares the host's PID namespace for the monitor) cannot mount at all.
    if (!hasSysAdmin()) return { staged: false, reason: 'the controller lacks CAP_SYS_ADMIN, which mounting needs' };
    try {
      if (readlinkSync('/proc/self/ns/pid') !== INITIAL_PID_NS) return { staged: false, reason: 'the controller runs in a PID namespace of its own (a container): the engine does not see its mounts' };
    } catch (err) {
      return { staged: false, reason: `its PID namespace cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    }
    // The compose service shares the host's PID namespace (for the monitor) and has CAP_SYS_ADMIN
    // (for the shared-memory pool), but its mounts and temp folder are its own.
    if (ownMountNamespace()) return { staged: false, reason: "the controller runs in a mount namespace other than the host's (a container)" };
    return { staged: true };
  })();
  return mode;
}

/** Mount options of a staged mount. Writable: nothing on it can be run, setuid or a device. */
const STAGED_FLAGS = { writable: 'bind,nosuid,nodev,noexec', readOnly: 'bind,ro,nosuid,nodev,noexec' } as const;

interface Entry {
  readonly held: HeldPath;
  /** The staging folder or file it is mounted on (staged), or the path itself (not staged). */
  readonly source: string;
  mounted: boolean;
}

const PREFIX = 'lm-mounts-';
/** Whether this process said yet which way it mounts. */
let announced = false;

/**
 * The host paths of one container: held open from their check to the container's start.
 * `release()` (also `await using`) unmounts, removes the staging folder (never recursively:
 * a path still mounted there is the host's folder) and closes every descriptor.
 */
export class MountStaging implements AsyncDisposable {
  private readonly entries: Entry[] = [];
  private dir?: string;
  private released = false;

  constructor(
    private readonly log: Logger,
    readonly mode: StagingMode = stagingMode(),
  ) {
    if (!announced) {
      announced = true;
      if (mode.staged) log.debug('host paths are mounted from the descriptors checked (staging mounts)');
      else log.warn({ reason: mode.reason }, `host paths are given to the engine as paths, checked again right before each start: a swap in the milliseconds before the engine mounts is not ruled out, and write grants are not nosuid/noexec (${mode.reason})`);
    }
  }

  /**
   * Take over a held path (closed by release) and return the source the engine mounts:
   * the staging mount of its descriptor, or (not staged) its path.
   */
  async stage(held: HeldPath, opts: { readonly writable: boolean }): Promise<string> {
    if (!this.mode.staged) {
      this.entries.push({ held, source: held.path, mounted: false });
      return held.path;
    }
    this.dir ??= mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-`));
    const source = path.join(this.dir, String(this.entries.length));
    const entry: Entry = { held, source, mounted: false };
    this.entries.push(entry);
    // The mount point: a folder for a folder, an empty file for a file (mkdtemp's folder is 0700).
    if (held.isDirectory) mkdirSync(source, { mode: 0o700 });
    else closeSync(openSync(source, 'wx', 0o600));
    const helper = mountHelper(this.helperPrefix(), this.log);
    if (helper) {
      try {
        // The helper mounts /proc/<this pid>/fd/<held.fd>: the kernel follows it to exactly that object.
        await helper.mount(held.fd, opts.writable, source);
      } catch (err) {
        // It ended before answering: the mount may be there, and release() must look.
        if (err instanceof MountHelperError && !err.answered) entry.mounted = true;
        throw err;
      }
    } else {
      // fd 3 of `mount` is the held descriptor: the kernel follows /proc/self/fd/3 to exactly
      // that object; --no-canonicalize keeps mount(8) from turning it back into a path.
      await run('mount', ['--no-canonicalize', '-o', opts.writable ? STAGED_FLAGS.writable : STAGED_FLAGS.readOnly, '/proc/self/fd/3', source], held.fd);
    }
    entry.mounted = true;
    return source;
  }

  /**
   * Right before the start: is every source still exactly what was held? Staged, this
   * checks the staging mounts (nobody else can change them); not staged, the path is walked
   * again without following symlinks and compared by inode. Throws PathChangedError.
   */
  verify(): void {
    for (const e of this.entries) {
      let now: { dev: number; ino: number };
      if (this.mode.staged) {
        const st = lstatSync(e.source);
        now = { dev: st.dev, ino: st.ino };
      } else {
        const again = holdRealPath(e.held.path);
        now = { dev: again.dev, ino: again.ino };
        again.close();
      }
      if (now.dev !== e.held.dev || now.ino !== e.held.ino) {
        throw new PathChangedError(e.held.path, e.source, `the file or folder checked (inode ${e.held.dev}:${e.held.ino})`, `another one (inode ${now.dev}:${now.ino})`);
      }
    }
  }

  /** Unmount, remove the staging folder and close every descriptor. Idempotent; never throws. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const mounted = this.entries.filter((e) => e.mounted);
    const helper = mounted.length ? mountHelper(this.helperPrefix(), this.log) : undefined;
    if (helper) await this.unmountThrough(helper, mounted);
    else if (mounted.length) {
      try {
        await run('umount', ['--lazy', ...mounted.map((e) => e.source)]); // one process for all
        for (const e of mounted) e.mounted = false;
      } catch (err) {
        this.log.warn({ sources: mounted.map((e) => e.source), err: (err as Error).message }, 'could not unmount the staging mounts; they are removed by the next controller or run');
      }
    }
    for (const e of this.entries) {
      // Tried even where an unmount failed: a mount point still in use is EBUSY, never removed
      // through; one whose mount was never made (a helper that died first) goes.
      if (e.source !== e.held.path) removeMountPoint(e.source);
      e.held.close();
    }
    if (this.dir) removeMountPoint(this.dir);
  }

  /** Every staging mount through the helper, at once; EINVAL (nothing mounted there) is done too. */
  private async unmountThrough(helper: NonNullable<ReturnType<typeof mountHelper>>, mounted: Entry[]): Promise<void> {
    const failed: string[] = [];
    await Promise.all(
      mounted.map(async (e) => {
        try {
          await helper.umount(e.source);
          e.mounted = false;
        } catch (err) {
          if (err instanceof MountHelperError && err.errno === 'EINVAL') e.mounted = false;
          else failed.push(`${e.source}: ${(err as Error).message}`);
        }
      }),
    );
    if (failed.length) this.log.warn({ failed }, 'could not unmount the staging mounts; they are removed by the next controller or run');
  }

  /** The only folders the helper may mount on: this process's staging folders. */
  private helperPrefix(): string {
    return path.join(os.tmpdir(), `${PREFIX}${process.pid}-`);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** An empty folder or file left by a staging mount, removed without ever recursing into a mount. */
function removeMountPoint(p: string): void {
  try {
    const st = lstatSync(p);
    if (st.isDirectory()) rmdirSync(p);
    else unlinkSync(p);
  } catch {
    // still mounted (busy), or gone: the next cleanup looks again
  }
}

/** Run mount(8) or umount(8); `fd` becomes its descriptor 3. */
function run(cmd: string, args: readonly string[], fd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', ...(fd === undefined ? [] : [fd])] });
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err.trim()}`))));
  });
}

/**
 * Staging folders of processes that died between staging and release (killed): unmount
 * what is still mounted there and remove them. Called when a run or a controller starts.
 */
export async function removeStagingLeftovers(log: Logger): Promise<void> {
  if (!stagingMode().staged) return;
  const tmp = os.tmpdir();
  let names: string[];
  try {
    names = readdirSync(tmp).filter((n) => n.startsWith(PREFIX));
  } catch {
    return;
  }
  // Read only when a killed process left a folder: the kernel builds this file under the mount
  // namespace's lock, and it took 1-800 ms of a run while other processes mounted and unmounted
  // (containers starting); most runs find no leftovers.
  let mounts: string[] | undefined;
  for (const name of names) {
    const pid = Number(/^lm-mounts-(\d+)-/.exec(name)?.[1]);
    if (!pid || alive(pid)) continue;
    const dir = path.join(tmp, name);
    mounts ??= readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined);
    for (const m of mounts.filter((m) => m.startsWith(`${dir}/`))) await run('umount', ['--lazy', m]).catch(() => undefined);
    try {
      for (const entry of readdirSync(dir)) removeMountPoint(path.join(dir, entry));
    } catch {
      continue;
    }
    removeMountPoint(dir);
    log.warn({ dir }, 'removed the staging mounts of a run or controller that was killed');
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
