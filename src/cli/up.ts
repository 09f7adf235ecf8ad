import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import {
  consoleAddress,
  Controller,
  ControlClient,
  controllerOptionsFromEnv,
  hubTokenFromEnv,
  isLogoMeshError,
  isRenderedDir,
  KubeBackend,
  loadRendered,
  LogoMeshError,
  metricsAddress,
  openEndpoints,
  resolveHome,
  type Home,
  type KubeBackendOptions,
  type Logger,
  type PluginStatus,
} from '../index.js';
import type { CliIo } from './io.js';
import { psTable } from './ps.js';

export interface UpOptions {
  /** Absent: the plugin folders an earlier controller of this home ran (state.json), else manifests/. */
  readonly dir?: string;
  readonly detach: boolean;
  /** How long -d waits for every plugin to be ready (image builds included). */
  readonly waitMs?: number;
  /** Run the plugins on the Kubernetes cluster of the kubeconfig, with these options (`--backend kubernetes`). */
  readonly kubernetes?: Readonly<Record<string, string>>;
}

/** `logomesh up [dir] [-d]`: run a controller for the plugin folders in dir. */
export async function upCommand(opts: UpOptions, io: CliIo, log: Logger): Promise<number> {
  const home = resolveHome();
  hubTokenFromEnv(); // a bad LOGOMESH_HUB_TOKEN fails here, before -d starts anything
  metricsAddress(); // and a bad LOGOMESH_METRICS
  consoleAddress(); // and a bad LOGOMESH_CONSOLE
  if (await controllerAnswers(home)) {
    throw new LogoMeshError('LM_CONTROLLER_RUNNING', `a controller is already running for ${home.dir}; use 'logomesh ps', or 'logomesh down' first`, { file: home.controlSocket });
  }
  return opts.detach ? upDetached(opts, home, io) : upForeground(opts, home, io, log);
}

async function controllerAnswers(home: Home): Promise<boolean> {
  try {
    await new ControlClient(home.controlSocket).plugins();
    return true;
  } catch {
    return false;
  }
}

async function upForeground(opts: UpOptions, home: Home, io: CliIo, log: Logger): Promise<number> {
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  const backend = opts.kubernetes ? await KubeBackend.connect(opts.kubernetes as KubeBackendOptions, log) : undefined;
  // On a cluster the instance is the installation's namespace: labels and plugin uids are the render's.
  if (backend && !process.env.LOGOMESH_INSTANCE) home = { ...home, instance: backend.target.instance };
  const host = await Controller.create({ log, home, progress: io.stderr, ...controllerOptionsFromEnv(), ...(backend ? { backend } : {}) });
  let stopping: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const endpoints = await openEndpoints(host, log, () => void shutdown('down'));
  function shutdown(reason: string): Promise<void> {
    stopping ??= (async () => {
      // A controller Pod gets SIGTERM when it is moved: its plugins stay for the next one to adopt.
      if (backend && reason === 'SIGTERM') {
        log.info({ reason }, 'leaving the plugins running for the next controller to adopt');
        await host.leave();
      } else {
        log.info({ reason }, 'stopping every plugin');
        await host.close();
      }
      await endpoints.close();
      resolveDone();
    })();
    return stopping;
  }
  const onSignal = (sig: NodeJS.Signals) => void shutdown(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (opts.dir !== undefined) {
      // In the cluster the folder is the render's manifests ConfigMap: manifests and their rendered objects, no plugin folders.
      if (backend && isRenderedDir(opts.dir)) host.load(backend.useRendered(loadRendered(opts.dir)));
      else host.loadDirectory(opts.dir);
    } else if (host.savedFolders().length) {
      io.err(`logomesh: no folder named; loading the plugin folders this home ran last (${home.stateFile})`);
      host.loadSaved();
    } else host.loadDirectory('manifests');
    const { port } = endpoints;
    await host.startAll();
    io.err(`logomesh: ${host.list().length} plugin(s) ready; hub on 127.0.0.1:${port} (token in ${home.tokenFile}); control socket ${home.controlSocket}${endpoints.metricsUrl ? `; metrics at ${endpoints.metricsUrl}` : ''}${endpoints.consoleUrl ? `; console at ${endpoints.consoleUrl} (token in ${home.dir}/console.token)` : ''}`);
    io.err(psTable(host.list()));
    await done;
    return 0;
  } catch (err) {
    if (isLogoMeshError(err)) io.err(`${err.code}: ${err.message}`);
    else io.err(String(err));
    await shutdown('start failed');
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Start the controller as a background process and wait until its plugins are ready. */
async function upDetached(opts: UpOptions, home: Home, io: CliIo): Promise<number> {
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  const out = openSync(home.logFile, 'a');
  const script = process.argv[1] ?? '';
  const kubeArgs = opts.kubernetes ? ['--backend', 'kubernetes', ...Object.entries(opts.kubernetes).flatMap(([k, v]) => [`--${k === 'podCidr' ? 'pod-cidr' : k}`, v])] : [];
  const child = spawn(process.execPath, [...process.execArgv, script, 'up', ...(opts.dir !== undefined ? [opts.dir] : []), ...kubeArgs], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, LOGOMESH_LOG_FORMAT: 'json' },
  });
  closeSync(out);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();
  const client = new ControlClient(home.controlSocket);
  const deadline = Date.now() + (opts.waitMs ?? 300_000);
  let list: PluginStatus[] | undefined;
  while (Date.now() < deadline) {
    if (exited !== undefined) break;
    try {
      list = await client.plugins();
    } catch {
      // Not listening yet.
    }
    if (list && list.length && list.every((p) => p.state === 'ready')) {
      io.out(psTable(list));
      io.err(`logomesh: controller running in the background (pid ${child.pid}); log: ${home.logFile}`);
      return 0;
    }
    if (list?.some((p) => p.state === 'failed')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const tail = readFileSync(home.logFile, 'utf8').trim().split('\n').slice(-15).join('\n');
  io.err(`logomesh: the controller did not get every plugin ready${exited !== undefined ? ` (it exited with ${exited})` : ''}`);
  if (list) io.err(psTable(list));
  io.err(`last lines of ${home.logFile}:\n${tail}`);
  if (exited === undefined) await client.down().catch(() => undefined);
  return 1;
}
