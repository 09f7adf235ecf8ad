import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectEngine, Controller, ControlClient, LogoMeshError, openEndpoints, removeByLabel, resolveHome, type Endpoints, type Home, type Logger } from '../index.js';
import { DevSession, type DevTarget } from './dev-session.js';
import type { CliIo } from './io.js';

export { ignoredChange } from './dev-watch.js';

export interface DevOptions {
  /** Reload into the controller running on the home (`logomesh up`) instead of starting one. */
  readonly attach: boolean;
  /** Each plugin under its runtime's debugger (docs/debugging.md). */
  readonly debug?: boolean;
}

/**
 * The home of a dev session: LOGOMESH_HOME if set (one controller per home), else the
 * default home, so `logomesh call` reaches it with no setting; if a controller already
 * runs there, a new temporary folder (removed at the end). Its instance label is its own,
 * derived from the home, whatever LOGOMESH_INSTANCE says (`<LOGOMESH_INSTANCE>-dev-<hash>`):
 * a dev session removes what its instance left at start and at stop, and must never reach
 * the containers of a `logomesh up` that shares LOGOMESH_INSTANCE.
 */
async function devHome(): Promise<{ home: Home; temporary: boolean; defaultHome: boolean }> {
  const env = process.env;
  const pick = (dir?: string): Home => {
    const base = resolveHome(dir ? { ...env, LOGOMESH_HOME: dir } : env);
    const hash = createHash('sha256').update(base.dir).digest('hex').slice(0, 12);
    return { ...base, instance: env.LOGOMESH_INSTANCE ? `${env.LOGOMESH_INSTANCE.slice(0, 44)}-dev-${hash}` : `dev-${hash}` };
  };
  const home = pick();
  if (!(await answers(home))) return { home, temporary: false, defaultHome: env.LOGOMESH_HOME === undefined };
  if (env.LOGOMESH_HOME !== undefined) {
    throw new LogoMeshError('LM_CONTROLLER_RUNNING', `a controller is already running for ${home.dir}; reload into it with 'logomesh dev --attach', stop it ('logomesh down'), or give logomesh dev another LOGOMESH_HOME`, {
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

/**
 * `logomesh dev <dir> [--attach]`: the plugin folders under `dir` (or `dir` itself, one
 * plugin) under a controller of their own, their output on stdout, and the changed plugin
 * (only it) replaced after every change, as `logomesh apply` does, without failing the
 * others' calls to it. With `--attach`, the same against the controller already running
 * on the home: the plugins of `dir` are added to it and reloaded in place, the others
 * (their dependencies, say) left alone. An invalid manifest or a failed build is printed
 * and the running version kept. Ctrl-C (or `logomesh down`) stops its own controller and
 * removes everything it started; an attached session only stops watching.
 */
export async function devCommand(target: string, opts: DevOptions, io: CliIo, log: Logger): Promise<number> {
  const dir = path.resolve(target);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${dir}: no such folder; logomesh dev takes a plugin folder or a folder of plugin folders`, { file: dir, expected: 'a plugin folder', found: 'nothing' });
  }
  return opts.attach ? attached(dir, io, log) : ownController(dir, io, log, opts.debug === true);
}

async function ownController(dir: string, io: CliIo, log: Logger, debug: boolean): Promise<number> {
  const docker = await connectEngine();
  const { home, temporary, defaultHome } = await devHome();
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  // A dev session starts clean: nothing of an earlier session of this home is adopted.
  await removeByLabel(docker, home.instance);
  const host = await Controller.create({ log, home, docker, progress: io.stderr, ...(debug ? { debug: true } : {}) });
  const target: DevTarget = {
    apply: (opts) => host.apply(dir, opts),
    follow: (id, write) => host.followLogs(id, (l) => write(l.text)),
    methods: (id) => host.status(id).methods,
    debugger: (id) => host.status(id).debug,
    docker,
  };
  const session = new DevSession(dir, target, io, log, true);
  let endpoints: Endpoints | undefined;
  return runUntilStopped(io, session, async () => {
    await host.close();
    await endpoints?.close();
    if (temporary) rmSync(home.dir, { recursive: true, force: true });
    io.err('logomesh dev: stopped; its containers are removed');
  }, async (shutdown) => {
    // A failed `call` is reported to its caller; here it would only repeat it.
    endpoints = await openEndpoints(host, log.child({}, { level: 'fatal' }), () => void shutdown('logomesh down'));
    const prefix = defaultHome ? '' : `LOGOMESH_HOME=${home.dir} `;
    io.err(`logomesh dev: watching ${dir}; control socket ${home.controlSocket}; hub on 127.0.0.1:${endpoints.port}; instance ${home.instance}`);
    return prefix;
  });
}

async function attached(dir: string, io: CliIo, log: Logger): Promise<number> {
  const client = ControlClient.forHome();
  await client.plugins(); // LM_CONTROLLER_UNAVAILABLE: nothing to attach to
  const follows = new Map<string, AbortController>();
  const target: DevTarget = {
    apply: (opts) => client.apply(dir, { ...opts, prune: false }),
    follow: (id, write) => {
      follows.get(id)?.abort();
      const abort = new AbortController();
      follows.set(id, abort);
      void client.followLogs(id, write, abort.signal).catch(() => undefined);
      return () => abort.abort();
    },
    methods: async (id) => (await client.plugins()).find((p) => p.id === id)?.methods ?? [],
  };
  const session = new DevSession(dir, target, io, log, false);
  return runUntilStopped(io, session, async () => {
    for (const f of follows.values()) f.abort();
    io.err('logomesh dev: stopped watching; the plugins keep running under the controller');
  }, async () => {
    io.err(`logomesh dev: watching ${dir}; reloading into the controller of ${client.home.dir}`);
    return client.home.dir === resolveHome({ ...process.env, LOGOMESH_HOME: undefined }).dir ? '' : `LOGOMESH_HOME=${client.home.dir} `;
  });
}

/** Start the session, run until SIGINT, SIGTERM or `down`, then stop it and `close`. */
async function runUntilStopped(io: CliIo, session: DevSession, close: () => Promise<void>, open: (shutdown: (why: string) => Promise<void>) => Promise<string>): Promise<number> {
  let stopping: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      io.err(`logomesh dev: stopping (${reason})`);
      await session.close();
      await close();
      resolveDone();
    })();
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => void shutdown(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const prefix = await open(shutdown);
    await session.start(prefix);
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
