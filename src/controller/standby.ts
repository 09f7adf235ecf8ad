import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import { HUB_SOCKET_NAME } from '../sandbox/container-spec.js';
import { isNetworked } from '../sandbox/egress.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import { prepareSandbox } from '../sandbox/prepare.js';
import type { ControllerContext } from './context.js';
import { withLiveLimits } from './live-limits.js';
import { giveSocketTo } from './plugin-socket.js';
import { boostFor, type StartupBoost } from './startup-boost.js';
import type { Managed } from './managed.js';

/** Where a standby is: its container starting, or started and waiting with its hello held by the hub. */
export type StandbyState = 'starting' | 'waiting';

/** What `ps` shows of a plugin's standby. */
export interface StandbyStatus {
  readonly state: StandbyState | 'failed';
  readonly containerId?: string;
  readonly lastError?: { readonly code: string; readonly message: string };
}

interface Standby {
  readonly name: string;
  readonly socketDir: string;
  container?: PluginContainer;
  /** Its start-up CPU boost, ended when its hello is held (or at the deadline). */
  boost?: StartupBoost;
  /** Discarded or switched in: whatever it was doing is no longer wanted. */
  done: boolean;
}

/** A container name that marks a standby not switched in: adoption never takes one. */
export const STANDBY_SUFFIX = '-standby';

/** Standbys lost in a row before the plugin runs without one (until its next start). */
const MAX_LOSSES = 5;

/**
 * Warm standbys (docs/manifest.md#standby): for a plugin that asks for one (restart.standby)
 * or that the operator names (LOGOMESH_STANDBY), a second container, prepared by the same
 * sandbox pipeline as the plugin's own (same image, user, limits, mounts, seccomp profile),
 * started, and connected to a hub socket of its own, where the hub holds its hello
 * unanswered: it serves nothing and may send nothing until it is switched in. A crash or a
 * restart switches to it in one turn of the hub (`take`), the container it replaces is
 * removed behind, and a new standby is prepared. It is removed with the plugin.
 */
export class Standbys {
  private readonly standbys = new Map<string, Standby>();
  private readonly losses = new Map<string, number>();
  private readonly errors = new Map<string, { code: string; message: string }>();

  constructor(
    private readonly cx: ControllerContext,
    /** Plugin ids the operator gave a standby (`*`: every one that can have one). */
    private readonly operatorIds: ReadonlySet<string> = new Set(),
    /** Told of a container switched in: its exit is the plugin's from now on. */
    private readonly onSwitched: (m: Managed, container: PluginContainer, exited: Promise<number>) => void = () => undefined,
  ) {}

  /** Does this plugin keep a standby? Not a networked one: its network and proxy are its container's alone (not built yet). */
  wanted(m: Managed): boolean {
    const { manifest } = m.loaded;
    if (isNetworked(manifest)) return false;
    return manifest.restart.standby || this.operatorIds.has(manifest.id) || this.operatorIds.has('*');
  }

  /** Can a crash or a restart switch to a standby now (its hello is held)? */
  ready(m: Managed): boolean {
    const s = this.standbys.get(m.loaded.manifest.id);
    return !!s?.container && !s.done && this.cx.hub.standbyWaiting(m.loaded.manifest.id);
  }

  status(id: string): StandbyStatus | undefined {
    const s = this.standbys.get(id);
    const lastError = this.errors.get(id);
    if (!s) return lastError ? { state: 'failed', lastError } : undefined;
    // Waiting: its hello held and its start-up boost over (it runs at its declared quota).
    const boosted = s.boost !== undefined && s.boost.status.endedAt === undefined;
    return {
      state: this.cx.hub.standbyWaiting(id) && !boosted ? 'waiting' : 'starting',
      ...(s.container ? { containerId: s.container.id } : {}),
      ...(lastError ? { lastError } : {}),
    };
  }

  /**
   * Prepare a standby for a ready plugin that wants one and has none, in the background:
   * failures are logged and kept for `ps`; after MAX_LOSSES in a row it stops trying until
   * the plugin's next start by hand.
   */
  prepare(m: Managed): void {
    const id = m.loaded.manifest.id;
    if (!this.wanted(m) || this.standbys.has(id) || this.cx.closing() || (this.losses.get(id) ?? 0) >= MAX_LOSSES) return;
    const hex = randomBytes(3).toString('hex');
    const s: Standby = { name: `lm-${id}-${hex}${STANDBY_SUFFIX}`, socketDir: `${path.join(this.cx.home.socketsDir, id)}.${hex}`, done: false };
    this.standbys.set(id, s);
    this.create(m, s).catch((err: unknown) => {
      const e = err instanceof LogoMeshError ? { code: err.code, message: err.message } : { code: 'LM_ENGINE_ERROR', message: errorText(err) };
      this.lost(m, s, e);
    });
  }

  /** A start by hand: the standby gets its full count of attempts again. */
  reset(id: string): void {
    this.losses.delete(id);
    this.errors.delete(id);
  }

  /**
   * Switch the plugin to its standby now: the hub closes the active connection and answers
   * the standby's hello in the same turn. Returns the standby's container, now the
   * plugin's (its exit is handed to onSwitched), or undefined when there is none ready.
   */
  take(m: Managed): PluginContainer | undefined {
    const id = m.loaded.manifest.id;
    const s = this.standbys.get(id);
    if (!s?.container || s.done || !this.cx.hub.switchToStandby(id)) return undefined;
    s.done = true;
    this.standbys.delete(id);
    this.losses.delete(id);
    const container = s.container;
    if (s.boost) m.boost = s.boost;
    else delete m.boost;
    // The socket folder of the container it replaced, if that was a standby too.
    this.removeSocketDirs(id, s.socketDir);
    this.onSwitched(m, container, container.wait());
    // The name without the suffix says it is a plugin's container now (adoption takes only such).
    this.cx.docker
      .getContainer(container.id)
      .rename({ name: s.name.slice(0, -STANDBY_SUFFIX.length) })
      .catch((err: unknown) => this.cx.log.warn({ plugin: id, err: errorText(err) }, 'could not rename the container switched in; a controller that adopts after this one will start the plugin anew'));
    return container;
  }

  /** Remove the plugin's standby, if any: its container, its hub connection point and socket folder. Never throws. */
  async discard(m: Managed): Promise<void> {
    const id = m.loaded.manifest.id;
    const s = this.standbys.get(id);
    if (!s) return;
    s.done = true;
    this.standbys.delete(id);
    s.boost?.cancel();
    await this.cx.hub.detachStandby(id);
    await s.container?.remove().catch((err: unknown) => this.cx.log.warn({ plugin: id, err: errorText(err) }, 'could not remove the standby container now'));
    rmSync(s.socketDir, { recursive: true, force: true });
  }

  /** The plugin is torn down: its standby goes, and the socket folders of the containers switched in before. */
  async teardown(m: Managed): Promise<void> {
    await this.discard(m);
    this.removeSocketDirs(m.loaded.manifest.id);
  }

  /** Remove the socket folders of this plugin's standbys (`<id>.<hex>`), but `keep`. */
  private removeSocketDirs(id: string, keep?: string): void {
    let names: string[];
    try {
      names = readdirSync(this.cx.home.socketsDir);
    } catch {
      return;
    }
    for (const name of names) {
      const dir = path.join(this.cx.home.socketsDir, name);
      if (name.startsWith(`${id}.`) && dir !== keep) rmSync(dir, { recursive: true, force: true });
    }
  }

  private async create(m: Managed, s: Standby): Promise<void> {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    const health = cx.monitoring.healthCheck(m);
    const sandbox = await prepareSandbox({
      docker: cx.docker,
      // The same sandbox as the plugin's next container: the operator's live limits, the health check.
      loaded: withLiveLimits(m.loaded, m.liveLimits),
      ...(health ? { healthCheck: health } : {}),
      instance: cx.home.instance,
      log: cx.log,
      policy: cx.policy(),
      audit: cx.audit.record,
      hubSocketDir: s.socketDir,
      name: s.name,
      ...(m.signed ? { signed: m.signed } : {}),
      operatorMounts: () => cx.grants.recheckPaths(id),
    });
    if (!sandbox) throw new LogoMeshError('LM_INTERRUPTED', `the standby of ${id} was not prepared`, { plugin: id });
    try {
      if (s.done) return;
      // Its SDK waits for the answer to its hello without a timeout (docs/protocol.md#hello).
      sandbox.spec.Env = [...(sandbox.spec.Env ?? []), 'LOGOMESH_STANDBY=1'];
      const socket = path.join(s.socketDir, HUB_SOCKET_NAME);
      await cx.hub.attachStandby(id, socket);
      giveSocketTo(socket, ...cx.idsOf(id), cx.log);
      // Boosted like the plugin's own container, until the hub holds its hello.
      const boost = boostFor(cx, m, sandbox.spec, () => void s.container?.kill().catch(() => undefined));
      if (boost) s.boost = boost;
      const container = await PluginContainer.create(cx.docker, sandbox.spec, cx.log.child({ plugin: id, standby: true }));
      s.container = container;
      if (s.done) return void (await container.remove());
      await container.attach(m.logs.writable('stdout'), m.logs.writable('stderr'));
      sandbox.verify(); // throws LM_PATH_CHANGED
      if (boost) this.endBoostAtHello(id, s, boost, container.id);
      await container.start();
      const exited = container.wait();
      exited.then(
        (code) => this.lost(m, s, boost?.error ?? { code: 'LM_PLUGIN_EXITED', message: `the standby of ${id} exited with code ${code} before it was switched in` }),
        () => undefined,
      );
      cx.log.info({ plugin: id, container: container.id.slice(0, 12) }, 'standby started');
    } finally {
      await sandbox.release();
    }
  }

  /** Begin the standby's boost; its readiness is its hello held by the hub ('standby-ready'), or the deadline. */
  private endBoostAtHello(id: string, s: Standby, boost: StartupBoost, containerId: string): void {
    const onReady = (readyId: string) => {
      if (readyId !== id || this.standbys.get(id) !== s) return;
      this.cx.hub.off('standby-ready', onReady);
      void boost.end('ready');
    };
    this.cx.hub.on('standby-ready', onReady);
    boost.begin(containerId);
    // Whatever ends it first (hello, deadline, discard), the listener goes too.
    const drop = () => this.cx.hub.off('standby-ready', onReady);
    setTimeout(drop, boost.status.deadline - Date.now() + 1).unref();
  }

  /** The standby failed before it was switched in: removed, and another prepared unless that keeps happening. */
  private lost(m: Managed, s: Standby, error: { code: string; message: string }): void {
    if (s.done) return;
    const id = m.loaded.manifest.id;
    const losses = (this.losses.get(id) ?? 0) + 1;
    this.losses.set(id, losses);
    this.errors.set(id, error);
    this.cx.log.warn({ plugin: id, code: error.code, losses }, `${error.message}${losses >= MAX_LOSSES ? `; no more standbys until the plugin is started again (${losses} lost in a row)` : ''}`);
    void this.discard(m).then(() => {
      if (m.state !== 'ready' || losses >= MAX_LOSSES) return;
      // A little later each time: a standby that cannot start must not become a start loop.
      setTimeout(() => m.state === 'ready' && this.prepare(m), Math.min(30_000, 500 * 2 ** (losses - 1))).unref();
    });
  }
}
