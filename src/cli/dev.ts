import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  connectEngine,
  Controller,
  ControlClient,
  isLogoMeshError,
  loadManifest,
  LogoMeshError,
  openEndpoints,
  preparePluginImage,
  removeByLabel,
  resolveHome,
  runtimeImage,
  type Docker,
  type Endpoints,
  type Home,
  type LoadedManifest,
  type Logger,
} from '../index.js';
import type { CliIo } from './io.js';

/** Changes closer together than this are one reload. */
const DEBOUNCE_MS = 100;

/**
 * Folders whose changes never reload: version control, editor state, caches, and
 * node_modules (too many folders to watch; a change that uses a new package is saved in
 * the plugin's own code too).
 */
const IGNORED_DIRS = new Set(['.git', '.hg', '.svn', '.idea', '.vscode', '__pycache__', '.pytest_cache', '.mypy_cache', '.ruff_cache', '.cache', 'target', 'node_modules']);

/**
 * Files editors and tools write next to the real ones: vim swap files and its 4913 probe,
 * backups ending in ~, emacs lock and autosave files, JetBrains safe-write temporaries,
 * .DS_Store, compiled Python.
 */
const IGNORED_FILE = /(^\.#)|(^#.*#$)|(~$)|(\.sw[a-px]$)|(^4913$)|(\.tmp$)|(___jb_(tmp|old)___$)|(^\.DS_Store$)|(\.py[co]$)/;

/** Whether a change to this path (relative to the plugin folder) is ignored. */
export function ignoredChange(relative: string | null | undefined): boolean {
  if (!relative) return false; // unknown file: reload, to be safe
  const parts = relative.split(/[\\/]/).filter(Boolean);
  if (parts.slice(0, -1).some((p) => IGNORED_DIRS.has(p)) || IGNORED_DIRS.has(parts.at(-1) ?? '')) return true;
  return IGNORED_FILE.test(parts.at(-1) ?? '');
}

/**
 * Watches a folder tree: one watcher per folder, added as folders appear. Node 20's
 * `recursive` watch on Linux watches each file's inode, so it goes deaf to a file that an
 * editor (or `sed -i`) replaced by renaming a new one over it; a folder's watch sees every
 * change of its entries, whatever the editor does.
 */
class TreeWatcher {
  private readonly watchers = new Map<string, FSWatcher>();

  constructor(
    private readonly root: string,
    private readonly onChange: (relative: string) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.add(root);
  }

  private add(dir: string): void {
    if (this.watchers.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, (_event, name) => this.changed(dir, name?.toString() ?? ''));
    } catch (err) {
      // Gone already, or not readable: nothing to watch there.
      if (dir === this.root) this.onError(err as Error);
      return;
    }
    w.on('error', (err) => {
      this.drop(dir);
      if (dir === this.root) this.onError(err);
    });
    this.watchers.set(dir, w);
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && !IGNORED_DIRS.has(e.name))
        .map((e) => e.name);
    } catch {
      // Removed while being added.
    }
    for (const e of entries) this.add(path.join(dir, e));
  }

  private drop(dir: string): void {
    for (const [d, w] of this.watchers) {
      if (d === dir || d.startsWith(`${dir}${path.sep}`)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  private changed(dir: string, name: string): void {
    const full = name ? path.join(dir, name) : dir;
    const relative = path.relative(this.root, full);
    if (ignoredChange(relative)) return;
    // A folder that appeared is watched too; one that went away is dropped.
    const st = statSync(full, { throwIfNoEntry: false });
    if (st?.isDirectory()) this.add(full);
    else if (!st) this.drop(full);
    this.onChange(relative || '.');
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

/**
 * The home of a dev session: LOGOMESH_HOME if set (one controller per home), else the
 * default home, so `logomesh call` reaches it with no setting; if a controller already
 * runs there, a new temporary folder (removed at the end). The instance label is
 * LOGOMESH_INSTANCE, else `dev-<hash of the home>`: never a controller's.
 */
async function devHome(): Promise<{ home: Home; temporary: boolean; defaultHome: boolean }> {
  const env = process.env;
  const pick = (dir?: string): Home => {
    const base = resolveHome(dir ? { ...env, LOGOMESH_HOME: dir } : env);
    return { ...base, instance: env.LOGOMESH_INSTANCE || `dev-${createHash('sha256').update(base.dir).digest('hex').slice(0, 12)}` };
  };
  const home = pick();
  if (!(await answers(home))) return { home, temporary: false, defaultHome: env.LOGOMESH_HOME === undefined };
  if (env.LOGOMESH_HOME !== undefined) {
    throw new LogoMeshError('LM_CONTROLLER_RUNNING', `a controller is already running for ${home.dir}; stop it ('logomesh down'), or give logomesh dev another LOGOMESH_HOME`, {
      file: home.controlSocket,
    });
  }
  return { home: pick(mkdtempSync(path.join(os.tmpdir(), 'logomesh-dev-'))), temporary: true, defaultHome: false };
}

async function answers(home: Home): Promise<boolean> {
  try {
    await new ControlClient(home.controlSocket).plugins();
    return true;
  } catch {
    return false;
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function describe(err: unknown): string {
  if (isLogoMeshError(err)) return `${err.code}: ${err.message}`;
  return String((err as Error)?.stack ?? err);
}

/**
 * `logomesh dev <plugin-dir>`: one plugin under its own controller, its output on stdout,
 * and a restart (Go and Rust: a rebuild first) after every change in its folder. An invalid
 * manifest or a failed build is printed and the running instance kept. The control socket
 * serves `logomesh call`, `ps` and `logs` as under `up`. Ctrl-C (or `logomesh down`) stops
 * the plugin and removes everything it started.
 */
export async function devCommand(target: string, io: CliIo, log: Logger): Promise<number> {
  const dir = path.resolve(target);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${dir}: no such folder; logomesh dev takes a plugin folder`, { file: dir, expected: 'a plugin folder', found: 'nothing' });
  }
  const docker = await connectEngine();
  const { home, temporary, defaultHome } = await devHome();
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  // A dev session starts clean: nothing of an earlier session of this home is adopted.
  await removeByLabel(docker, home.instance);
  const host = await Controller.create({ log, home, docker, progress: io.stderr });
  const session = new DevSession(dir, host, docker, io, log);

  let stopping: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let endpoints: Endpoints | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      io.err(`logomesh dev: stopping (${reason})`);
      await session.close();
      await host.close();
      await endpoints?.close();
      if (temporary) rmSync(home.dir, { recursive: true, force: true });
      io.err('logomesh dev: stopped; its containers are removed');
      resolveDone();
    })();
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => void shutdown(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // A failed `call` is reported to its caller; here it would only repeat it.
    endpoints = await openEndpoints(host, log.child({}, { level: 'fatal' }), () => void shutdown('logomesh down'));
    const { port } = endpoints;
    const prefix = defaultHome ? '' : `LOGOMESH_HOME=${home.dir} `;
    io.err(`logomesh dev: watching ${dir}; control socket ${home.controlSocket}; hub on 127.0.0.1:${port}; instance ${home.instance}`);
    await session.start((loaded) => {
      const method = loaded.manifest.coordination.exposesMethods[0] ?? '<method>';
      io.err(`logomesh dev: call it from another terminal: ${prefix}logomesh call ${loaded.manifest.id}.${method} '{}'`);
    });
    await done;
    return 0;
  } catch (err) {
    await shutdown('start failed');
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The plugin of a dev session: its current manifest, reloads, and the folder watcher. */
class DevSession {
  private current?: LoadedManifest;
  private unfollow?: () => void;
  private watcher?: TreeWatcher;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private announced = false;
  private onFirstLoad?: (loaded: LoadedManifest) => void;

  constructor(
    private readonly dir: string,
    private readonly host: Controller,
    private readonly docker: Docker,
    private readonly io: CliIo,
    private readonly log: Logger,
  ) {}

  /** Load and start the plugin (a failure is printed; the watcher retries on the next change), then watch. */
  async start(onFirstLoad: (loaded: LoadedManifest) => void): Promise<void> {
    this.onFirstLoad = onFirstLoad;
    this.watcher = new TreeWatcher(
      this.dir,
      (file) => {
        if (this.closed) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.schedule(file), DEBOUNCE_MS);
      },
      (err) => this.io.err(`logomesh dev: watching ${this.dir} failed: ${err.message}; restart logomesh dev`),
    );
    this.schedule(null);
    await this.running;
  }

  /** One reload at a time; changes during a reload cause one more after it. */
  private schedule(changed: string | null): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reload(changed).finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        this.schedule('more changes');
      }
    });
  }

  private async reload(changed: string | null): Promise<void> {
    const t0 = performance.now();
    if (changed) this.io.err(`logomesh dev: ${changed} changed; reloading`);
    let loaded: LoadedManifest;
    try {
      loaded = loadManifest(this.dir);
      runtimeImage(loaded.manifest.runtime);
    } catch (err) {
      this.io.err(`logomesh dev: the manifest is rejected${this.current ? `; ${this.current.manifest.id} keeps running the previous version` : ''}\n${describe(err)}`);
      return;
    }
    const { id, runtime } = loaded.manifest;
    if (!this.announced) {
      this.announced = true;
      this.onFirstLoad?.(loaded);
    }
    let buildMs = 0;
    const rt = runtimeImage(runtime);
    if (rt.compile) {
      // Built while the previous instance still runs: a compile error leaves it running.
      this.io.err(`logomesh dev: building ${id} (${runtime})`);
      const b0 = performance.now();
      try {
        await preparePluginImage(this.docker, rt, loaded, { log: this.log, progress: this.io.stderr });
      } catch (err) {
        this.io.err(`logomesh dev: the build of ${id} failed${this.current ? '; the previous version keeps running' : ''}\n${describe(err)}`);
        return;
      }
      buildMs = performance.now() - b0;
    }
    if (this.closed) return;
    const r0 = performance.now();
    try {
      const previous = this.current;
      if (previous && previous.manifest.id === id && previous.hash === loaded.hash) {
        await this.host.restart(id);
      } else {
        if (previous) {
          this.unfollow?.();
          await this.host.unload(previous.manifest.id);
          this.current = undefined;
        }
        this.host.load([loaded]);
        this.current = loaded;
        this.unfollow = this.host.followLogs(id, (line) => this.io.stdout.write(`${id} | ${line.text}\n`));
        await this.host.start(id);
      }
    } catch (err) {
      if (this.closed) return;
      // Its output was streamed above already: the first line of the error says enough.
      const streamed = isLogoMeshError(err) && ['LM_PLUGIN_EXITED', 'LM_START_TIMEOUT'].includes(err.code);
      const text = streamed ? `${describe(err).split('\n')[0]!.replace(/; last output:$/, '')} (its output is above)` : describe(err);
      this.io.err(`logomesh dev: ${id} did not start; fix it and save again\n${text}`);
      return;
    }
    const total = performance.now() - t0;
    const parts = rt.compile ? ` (build ${seconds(buildMs)}, restart ${seconds(performance.now() - r0)})` : '';
    const methods = this.host.status(id).methods.join(', ') || 'none';
    this.io.err(`logomesh dev: ${id} ${changed ? 'reloaded' : 'started'} in ${seconds(total)}${parts}; methods: ${methods}`);
  }

  /**
   * Stop watching, and give a reload in progress a moment to finish. Not longer: a start
   * that has not happened yet is refused once the controller closes, and one in progress
   * is stopped by the close, so nothing is left either way.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running?.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
    clearTimeout(timer);
  }
}
