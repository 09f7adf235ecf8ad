import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { PathGrant } from '../grants/path-grants.js';
import { policyOf } from '../hub/acl.js';
import { HUB_SOCKET_NAME } from '../sandbox/container-spec.js';
import { isNetworked } from '../sandbox/egress.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import type { Workload } from './backend.js';
import { prepareSandbox, type PreparedSandbox } from '../sandbox/prepare.js';
import type { ControllerContext } from './context.js';
import { beginStop } from './graceful-stop.js';
import { pluginSocketDir } from './home.js';
import { verifyBeforeStart } from './load-checks.js';
import { withLiveLimits } from './live-limits.js';
import { egressKey, isUp, type Managed } from './managed.js';
import { DEFAULTS } from './options.js';
import { giveSocketTo } from './plugin-socket.js';
import { readyOrExit, waitReady, type ReadyWait } from './readiness.js';
import { boostFor, type StartupBoost } from './startup-boost.js';
import type { Standbys } from './standby.js';

/** What the launcher hands to the supervisor: a container to follow from its start, a plugin to watch once ready. */
export interface Supervision {
  watchExit(m: Managed, container: Workload, exited: Promise<number>): void;
  /** Resolves once the plugin is watched by the resource monitor too (never rejects). */
  startHealth(m: Managed): Promise<void>;
  stopTimers(m: Managed): void;
}

/**
 * The start pipeline and the stop sequence of one plugin: signature checked again, its
 * sandbox prepared (sandbox/prepare.ts), its hub socket opened for its own user, its
 * container created and started, ready when its hello arrives; stopped with the shutdown
 * message, then SIGTERM, then SIGKILL; torn down without a trace on every path.
 */
export class Launcher {
  constructor(
    private readonly cx: ControllerContext,
    private readonly supervision: Supervision,
    /** Warm standbys: removed with the plugin's container. */
    private readonly standbys?: Standbys,
  ) {}

  private get startTimeoutMs(): number {
    return this.cx.opts.startTimeoutMs ?? DEFAULTS.startTimeoutMs;
  }

  private get stopGraceMs(): number {
    return this.cx.opts.stopGraceMs ?? DEFAULTS.stopGraceMs;
  }

  /**
   * Start a plugin whose dependencies are ready; resolves when it said hello. Throws the
   * failing step's coded error (audited), after a teardown. A `successor` is the
   * replacement of a running plugin (deploy/replace.ts): it gets the other socket folder
   * and egress attachment, and the hub hands the plugin's calls to it at its hello.
   */
  async start(m: Managed, successor = false): Promise<void> {
    const { cx } = this;
    if (isUp(m)) return;
    this.supervision.stopTimers(m);
    if (cx.closing()) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', 'the controller is shutting down', {});
    const { id } = m.loaded.manifest;
    for (const dep of m.loaded.manifest.dependencies.plugins) {
      if (!cx.hub.isReady(dep)) throw new LogoMeshError('LM_DEPENDENCY', `cannot start ${id}: its dependency ${dep} is not ready`, { plugin: id, dependency: dep });
    }
    m.state = 'starting';
    delete m.exitCode;
    delete m.oomKilled;
    const t0 = Date.now();
    let ready: ReadyWait | undefined;
    let sandbox: PreparedSandbox | undefined;
    let boost: StartupBoost | undefined;
    try {
      const signed = await verifyBeforeStart(m.loaded, cx.opts.policy, cx.audit.record); // throws LM_SIGNATURE: the folder may have changed since load
      if (signed) m.signed = signed;
      else delete m.signed;
      const timing = { loadStart: Date.now() };
      await cx.monitoring.prepare(); // once: the health check program and the monitor
      let operatorGrants: readonly PathGrant[] = [];
      sandbox = await this.prepare(m, timing, (g) => (operatorGrants = g));
      await this.attachHub(m, undefined, successor);
      // Not boosted silently: a quota the engine will not lower stops the container (the start fails with why).
      boost = boostFor(cx, m, sandbox.spec, () => void container.kill().catch(() => undefined));
      if (boost) m.boost = boost;
      else delete m.boost;
      const container = await PluginContainer.create(cx.docker, sandbox.spec, cx.log.child({ plugin: id }));
      m.container = container;
      m.drainOutput = await container.attach(m.logs.writable('stdout'), m.logs.writable('stderr'));
      ready = waitReady(cx.hub, m, this.startTimeoutMs);
      // A grant revoked while this start was under way is not mounted after all.
      for (const g of operatorGrants) if (cx.grants.path(id, g.name) !== g) throw new LogoMeshError('LM_GRANT_PATH', `plugin ${id}: the path grant ${g.name} was revoked while the plugin was starting; the container is not started`, { plugin: id, grant: g.name });
      sandbox.verify(); // throws LM_PATH_CHANGED
      boost?.begin(container.id); // the deadline runs from here, whatever the plugin does
      await container.start();
      await sandbox.release(); // the container holds its own mounts now
      m.startedAt = Date.now();
      const exited = container.wait();
      this.supervision.watchExit(m, container, exited);
      await readyOrExit(m, ready, exited, { audit: cx.audit.record, kernel: cx.kernel });
      // The declared quota is back before the plugin counts as ready (and before the monitor watches it).
      await boost?.end('ready');
      if (boost?.error) throw boost.error;
      if (cx.debug) m.debug = await cx.debug.expose(m);
      m.state = 'ready';
      m.readySince = Date.now();
      m.startMs = Date.now() - timing.loadStart;
      await this.supervision.startHealth(m);
      cx.persist();
      cx.audit.record({ who: 'controller', action: 'start', resource: id, result: 'ready' });
      cx.log.info({ plugin: id, ms: m.startMs, total: Date.now() - t0 }, 'plugin ready');
    } catch (err) {
      ready?.cancel();
      await sandbox?.release();
      // A container stopped because its boost could not end exits before its hello: the boost's error says why.
      const e = boost?.error ?? (err instanceof LogoMeshError ? err : new LogoMeshError('LM_ENGINE_ERROR', (err as Error).message, {}, { cause: err }));
      cx.audit.record({ who: 'controller', action: 'start', resource: id, result: 'failed', code: e.code, reason: e.message });
      m.state = 'failed';
      m.lastError = { code: e.code, message: e.message };
      await this.teardown(m, successor ? 'successor' : 'current');
      throw e;
    }
  }

  /**
   * The plugin's sandbox, as `logomesh run` prepares it, with what only a controller adds:
   * its hub socket folder, the operator's path grants (checked again now), its network
   * through the controller's egress proxy without the hosts the operator revoked. The
   * start's time (startMs) is counted from the mounts on, after image builds.
   */
  private async prepare(m: Managed, timing: { loadStart: number }, granted: (g: readonly PathGrant[]) => void): Promise<PreparedSandbox> {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    const hooks = cx.opts.testHooks;
    const health = cx.monitoring.healthCheck(m);
    const sandbox = await prepareSandbox({
      docker: cx.docker,
      // The operator's live limit changes hold across restarts (monitoring.ts setLimits).
      loaded: withLiveLimits(m.loaded, m.liveLimits),
      instance: cx.home.instance,
      log: cx.log,
      policy: cx.policy(),
      audit: cx.audit.record,
      hubSocketDir: pluginSocketDir(cx.home, id, m.generation),
      ...(await segmentsDirOf(cx, id)),
      ...(cx.debug ? { adjustSpec: (spec) => cx.debug!.adjust(m, spec) } : {}),
      ...(health ? { healthCheck: health } : {}),
      name: `lm-${id}-${randomBytes(3).toString('hex')}`,
      ...(cx.opts.progress ? { progress: cx.opts.progress } : {}),
      ...(m.signed ? { signed: m.signed } : {}),
      operatorMounts: () => {
        const grants = cx.grants.recheckPaths(id); // throws LM_GRANT_PATH
        granted(grants);
        return grants;
      },
      network: async (loaded) => {
        const egress = await cx.egress.get();
        const network = await egress.attach(egressKey(m), loaded.manifest);
        // The attachment lists the manifest's hosts; the operator's revocations are taken
        // off before the container exists, so the plugin never reaches a revoked host.
        for (const host of cx.grants.revokedHosts(id)) await egress.revokeHost(egressKey(m), host);
        return network;
      },
      hooks: {
        beforeMounts: async () => {
          timing.loadStart = Date.now();
          await hooks?.beforeMounts?.(id);
        },
        ...(hooks?.afterMounts ? { afterMounts: () => hooks.afterMounts!(id) } : {}),
        ...(hooks?.afterSnapshot ? { afterSnapshot: hooks.afterSnapshot } : {}),
      },
    });
    if (!sandbox) throw new LogoMeshError('LM_INTERRUPTED', `the start of ${id} was aborted`, { plugin: id });
    return sandbox;
  }

  /**
   * (Re)create the plugin's hub socket, and give it to the plugin's own user, mode 0600:
   * nobody else connects. Listening starts before the container exists, so a plugin that
   * connects at once (or an adopted one reconnecting) finds it.
   */
  /** After a replacement (deploy/replace.ts): the plugin's standby, made from its old version, gives way to one of the new. */
  async renewStandby(m: Managed): Promise<void> {
    await this.standbys?.discard(m);
    this.standbys?.prepare(m);
  }

  async attachHub(m: Managed, socketDir = pluginSocketDir(this.cx.home, m.loaded.manifest.id, m.generation), successor = false): Promise<void> {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    const socket = path.join(socketDir, HUB_SOCKET_NAME);
    if (successor) {
      await cx.hub.detachSuccessor(id);
      await cx.hub.attachSuccessor(policyOf(m.loaded.manifest), socket);
    } else {
      await cx.hub.detachPlugin(id);
      await cx.hub.attachPlugin(policyOf(m.loaded.manifest), socket);
    }
    giveSocketTo(socket, ...cx.idsOf(id), cx.log);
  }

  /** Stop: shutdown message, then SIGTERM, then SIGKILL, each after the grace period; audited. */
  async stop(m: Managed): Promise<void> {
    const { cx } = this;
    const container = await beginStop(cx, (m) => this.supervision.stopTimers(m), m, this.stopGraceMs, 'sending SIGTERM');
    if (!container) return;
    const { id } = m.loaded.manifest;
    await container.stop(Math.ceil(this.stopGraceMs / 1000));
    await this.teardown(m);
    m.state = 'stopped';
    cx.audit.record({ who: 'controller', action: 'stop', resource: id, result: 'stopped' });
  }

  /**
   * Kill a plugin's container now (SIGKILL, no grace) and wait for its end; its exit is
   * expected, not a failure. Returns when the kill was confirmed (ms since the epoch).
   */
  async killAtOnce(m: Managed): Promise<number> {
    this.supervision.stopTimers(m);
    m.state = 'stopping';
    await m.container!.kill();
    return Date.now();
  }

  /**
   * Remove the container, its network and the hub socket (of the plugin's current
   * connection, of a replacement that failed, or of a replaced one that retired); safe
   * after any failure. Never throws: with the engine gone, the container is removed by the next reconcile or
   * `logomesh clean`.
   */
  async teardown(m: Managed, which: 'current' | 'successor' | 'retiring' = 'current'): Promise<void> {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    // The last lines a container that ended wrote (an OOM kill, a crash) are kept for `logs`.
    const ended = m.exitCode !== undefined || m.state === 'stopping';
    if (m.container && ended) await m.drainOutput?.(1_000).catch(() => undefined);
    delete m.drainOutput;
    // A replacement's two containers: each removal ends only its own container's watch.
    if (m.container || which === 'current') cx.monitoring.unwatch(id, m.container?.id);
    m.boost?.cancel(); // its container goes: no deadline to keep
    try {
      await m.container?.remove();
    } catch (err) {
      cx.log.warn({ plugin: id, err: errorText(err) }, 'could not remove the plugin container now');
    }
    if (isNetworked(m.loaded.manifest)) await cx.egress.detach(egressKey(m));
    // A replacement's two containers: the plugin's standby goes with the current one only.
    if (which === 'current') await this.standbys?.teardown(m);
    if (which === 'successor') await cx.hub.detachSuccessor(id);
    else if (which === 'retiring') await cx.hub.detachRetiring(id);
    else await cx.hub.detachPlugin(id);
    rmSync(pluginSocketDir(cx.home, id, m.generation), { recursive: true, force: true });
    // What it held is taken back; its own segments go unless a running plugin holds them.
    // A replacement's two containers share the plugin's segments: only the current one's end counts.
    if (which === 'current') await cx.segments.pluginGone(id).catch((err: unknown) => cx.log.warn({ plugin: id, err: errorText(err) }, 'could not reclaim the shared memory of a stopped plugin'));
  }
}

/** The pool, mounted now, for a plugin whose manifest sets sharedMemory. */
async function segmentsDirOf(cx: ControllerContext, id: string): Promise<{ segmentsDir?: string }> {
  const dir = await cx.segments.mountFor(id);
  return dir ? { segmentsDir: dir } : {};
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
