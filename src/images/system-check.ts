import type { ContainerCreateOptions } from 'dockerode';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError, isLogoMeshError } from '../errors.js';
import { instanceId, LABEL, ownerLabels } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import { REPO_DIR } from '../paths.js';
import { PLUGIN_USER } from '../runtimes/runtime.js';
import { ignoreGone } from '../engine/cleanup.js';
import { dependencyError } from './dependency-issues.js';
import { engineError, withTimeout, type Docker } from '../engine/docker.js';

/** The image `dependencies.system` is checked in, and why that one. */
export interface CheckedImage {
  readonly tag: string;
  readonly id: string;
  /** Said in the error: "the image the plugin runs in", "the image Go plugins are compiled in". */
  readonly role: string;
}

/** How one entry was found: an installed Debian package (with its version) or a command (with its path). */
export interface Found {
  readonly kind: 'package' | 'command';
  readonly detail: string;
}

export interface SystemCheck {
  readonly imageId: string;
  /** Sorted, duplicates removed. */
  readonly names: readonly string[];
  readonly found: Readonly<Record<string, Found>>;
  readonly missing: readonly string[];
}

export interface SystemCheckOptions {
  readonly log: Logger;
  /** Instance label of the check container; by default this process's (LOGOMESH_INSTANCE, or a run-<pid>-… id). */
  readonly instance?: string;
  /** Folder for results kept across processes; null keeps them in memory only. Default: LOGOMESH_CACHE_DIR or the package's cache. */
  readonly cacheDir?: string | null;
}

/** Where a check was answered from: a check container, this process's memory, or the cache folder. */
export type CheckSource = 'container' | 'memory' | 'disk';

/**
 * Each entry is looked up as an installed Debian package, then as a command on PATH (an
 * executable path, not a shell builtin). Entries come in as arguments ("$@"), never as
 * script text. One line per entry: `package\tNAME\tVERSION`, `command\tNAME\tPATH` or
 * `missing\tNAME`.
 */
export const CHECK_SCRIPT = [
  'for n do',
  "  s=$(dpkg-query -W -f '${db:Status-Abbrev}|${Version}\\n' \"$n\" 2>/dev/null)",
  '  case $s in ?i*) v=${s#*|}; printf \'package\\t%s\\t%s\\n\' "$n" "${v%%[!A-Za-z0-9.+:~_-]*}"; continue ;; esac',
  '  p=$(command -v "$n" 2>/dev/null)',
  '  case $p in /*) printf \'command\\t%s\\t%s\\n\' "$n" "$p"; continue ;; esac',
  "  printf 'missing\\t%s\\n' \"$n\"",
  'done',
].join('\n');

/** How long a check container may take before it is removed and the check fails. */
const CHECK_TIMEOUT_MS = 30_000;
const MB = 1024 * 1024;

/** Sorted and without duplicates: the list as a set, so order and repeats don't matter. */
export function normaliseNames(names: readonly string[]): string[] {
  return [...new Set(names)].sort();
}

/** The cache key of a check: the image id and the set of names. */
export function systemCheckKey(imageId: string, names: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify({ check: 'system', version: 1, image: imageId, names: normaliseNames(names) })).digest('hex');
}

/**
 * The short-lived container that runs the check: as locked down as a plugin's (no network,
 * read-only root, no capabilities, no-new-privileges, the plugin user, small limits), and
 * labelled as a plugin container of this instance so every cleanup finds it.
 */
export function systemCheckSpec(imageId: string, names: readonly string[], labels: Readonly<Record<string, string>>): ContainerCreateOptions {
  return {
    Image: imageId,
    Entrypoint: ['/bin/sh', '-c', CHECK_SCRIPT, 'logomesh-system-check'],
    Cmd: [...names],
    User: PLUGIN_USER,
    WorkingDir: '/',
    Env: ['LC_ALL=C'],
    Labels: { ...labels },
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    NetworkDisabled: true,
    HostConfig: {
      Memory: 64 * MB,
      MemorySwap: 64 * MB,
      CpuPeriod: 100_000,
      CpuQuota: 100_000,
      PidsLimit: 32,
      Ulimits: [{ Name: 'nofile', Soft: 256, Hard: 256 }],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=1m,mode=1777' },
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      NetworkMode: 'none',
      IpcMode: 'private',
      Devices: [],
      Mounts: [],
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  };
}

/** Read the check's output; LM_ENGINE_ERROR when it does not answer for exactly the names asked. */
export function parseCheckOutput(imageId: string, names: readonly string[], output: string): SystemCheck {
  const found: Record<string, Found> = {};
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const line of output.split('\n')) {
    if (!line) continue;
    const [kind, name, detail = ''] = line.split('\t');
    if (!name || !names.includes(name) || seen.has(name) || (kind !== 'package' && kind !== 'command' && kind !== 'missing')) {
      throw new LogoMeshError('LM_ENGINE_ERROR', `the dependencies.system check in image ${imageId} printed an unexpected line: ${JSON.stringify(line)}`, { image: imageId });
    }
    seen.add(name);
    if (kind === 'missing') missing.push(name);
    else found[name] = { kind, detail };
  }
  const unanswered = names.filter((n) => !seen.has(n));
  if (unanswered.length > 0) {
    throw new LogoMeshError('LM_ENGINE_ERROR', `the dependencies.system check in image ${imageId} gave no answer for ${unanswered.join(', ')}`, { image: imageId });
  }
  return { imageId, names: [...names], found, missing };
}

/** The engine's multiplexed log stream (8-byte frame headers) as text, stdout and stderr apart. */
export function demuxLogs(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const stream = buf[at];
    const size = buf.readUInt32BE(at + 4);
    const chunk = buf.subarray(at + 8, at + 8 + size);
    (stream === 2 ? err : out).push(chunk);
    at += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

const memory = new Map<string, Promise<SystemCheck>>();
let processInstance: string | undefined;

/** Forget the results kept in this process (tests use it to measure a cold check). */
export function forgetSystemChecks(): void {
  memory.clear();
}

function defaultCacheDir(): string {
  return process.env.LOGOMESH_CACHE_DIR
    ? path.join(process.env.LOGOMESH_CACHE_DIR, 'system-checks')
    : path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh', 'system-checks');
}

/**
 * Check a plugin's `dependencies.system` in `image`. Each entry must be an installed
 * Debian package or a command on PATH there; otherwise LM_DEPENDENCY names the plugin, the
 * manifest, the pointer of every missing entry and the image. One container per image and
 * set of names: the answer is kept in memory and in the cache folder, keyed by the image
 * id, so a later start (in any process) costs no container.
 */
export async function checkSystemDependencies(docker: Docker, loaded: LoadedManifest, image: CheckedImage, opts: SystemCheckOptions): Promise<{ check: SystemCheck; source: CheckSource } | undefined> {
  const list = loaded.manifest.dependencies.system;
  if (list.length === 0) return undefined;
  const names = normaliseNames(list);
  const key = systemCheckKey(image.id, names);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;

  let source: CheckSource = 'memory';
  let pending = memory.get(key);
  if (!pending) {
    const fromDisk = cacheDir ? readCached(cacheDir, key, image.id, names) : undefined;
    source = fromDisk ? 'disk' : 'container';
    pending = fromDisk
      ? Promise.resolve(fromDisk)
      : runCheck(docker, loaded, image, names, opts).then((check) => {
          if (cacheDir) writeCached(cacheDir, key, check, opts.log);
          return check;
        });
    memory.set(key, pending);
    // A failed check (engine trouble) is not an answer: the next start tries again.
    pending.catch(() => memory.delete(key));
  }
  const check = await pending;
  opts.log.debug({ plugin: loaded.manifest.id, image: image.tag, source, found: check.found, missing: check.missing }, 'dependencies.system checked');
  if (check.missing.length > 0) throw missingError(loaded, image, check);
  return { check, source };
}

async function runCheck(docker: Docker, loaded: LoadedManifest, image: CheckedImage, names: readonly string[], opts: SystemCheckOptions): Promise<SystemCheck> {
  processInstance ??= instanceId();
  const labels = { ...ownerLabels('plugin', opts.instance ?? processInstance), [LABEL.plugin]: loaded.manifest.id };
  const started = Date.now();
  let container: Awaited<ReturnType<Docker['createContainer']>> | undefined;
  const what = `check dependencies.system of ${loaded.manifest.id} in image ${image.tag}`;
  try {
    container = await docker.createContainer(systemCheckSpec(image.id, names, labels));
    const c = container;
    const exit = await withTimeout(
      (async () => {
        await c.start();
        return ((await c.wait()) as { StatusCode: number }).StatusCode;
      })(),
      CHECK_TIMEOUT_MS,
      `no answer within ${CHECK_TIMEOUT_MS} ms`,
    );
    const { stdout, stderr } = demuxLogs((await c.logs({ stdout: true, stderr: true, follow: false })) as Buffer);
    if (exit !== 0) {
      throw new LogoMeshError('LM_ENGINE_ERROR', `cannot ${what}: the check exited with code ${exit}: ${(stderr || stdout).trim().slice(-500)}`, { image: image.tag, imageId: image.id, exitCode: exit });
    }
    const check = parseCheckOutput(image.id, names, stdout);
    opts.log.debug({ plugin: loaded.manifest.id, image: image.tag, ms: Date.now() - started }, 'dependencies.system check container done');
    return check;
  } catch (err) {
    if (isLogoMeshError(err)) throw err;
    throw engineError(what, err, { image: image.tag, imageId: image.id });
  } finally {
    if (container) await ignoreGone(container.remove({ force: true, v: true })).catch((err: unknown) => opts.log.warn({ err: String(err) }, 'dependencies.system check container not removed'));
  }
}

function missingError(loaded: LoadedManifest, image: CheckedImage, check: SystemCheck): LogoMeshError {
  const list = loaded.manifest.dependencies.system;
  const problems = list.flatMap((name, i) =>
    check.missing.includes(name)
      ? [{ path: `/dependencies/system/${i}`, expected: `an installed Debian package or a command on PATH in ${image.tag}`, found: `neither for ${JSON.stringify(name)}` }]
      : [],
  );
  return dependencyError(
    loaded,
    'LM_DEPENDENCY',
    `plugin ${loaded.manifest.id} cannot start: ${image.tag} (${image.role}, ${image.id.replace(/^sha256:/, '').slice(0, 12)}) lacks ${check.missing.join(', ')} from dependencies.system`,
    problems,
    { image: image.tag, imageId: image.id, missing: check.missing },
  );
}

function cacheFile(dir: string, key: string): string {
  return path.join(dir, `${key}.json`);
}

function readCached(dir: string, key: string, imageId: string, names: readonly string[]): SystemCheck | undefined {
  try {
    const data = JSON.parse(readFileSync(cacheFile(dir, key), 'utf8')) as SystemCheck;
    const same = data.imageId === imageId && JSON.stringify(data.names) === JSON.stringify(names) && Array.isArray(data.missing) && typeof data.found === 'object';
    return same ? data : undefined;
  } catch {
    return undefined;
  }
}

/** Best effort: a cache folder that cannot be written only costs a container next time. */
function writeCached(dir: string, key: string, check: SystemCheck, log: Logger): void {
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${cacheFile(dir, key)}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(check));
    renameSync(tmp, cacheFile(dir, key));
  } catch (err) {
    log.debug({ dir, err: String(err) }, 'dependencies.system result not cached on disk');
  }
}
