import { randomBytes } from 'node:crypto';
import type { ContainerInfo } from 'dockerode';
import { readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { removeByLabel } from '../engine/cleanup.js';
import { connectEngine, engineStatus, errorText, withTimeout, type Docker } from '../engine/docker.js';
import { LogoMeshError, ManifestRejectedError, type ManifestIssue } from '../errors.js';
import { policyOf } from '../hub/acl.js';
import { Hub, type HostMethod } from '../hub/hub.js';
import type { HubLimits } from '../hub/limits-from-env.js';
import type { Logger } from '../log.js';
import { findManifest, loadManifest, type LoadedManifest } from '../manifest/index.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import { enforcePolicy, hostCovered, policyAllowsHost, policyViolations } from '../policy/decisions.js';
import type { PathGrant } from '../grants/path-grants.js';
import { hasOperatorMounts } from '../sandbox/container-mounts.js';
import { prepareSandbox, type PreparedSandbox } from '../sandbox/prepare.js';
import { signedContentOf, verifyPlugin, verifyPluginAsync, type SignedContent } from '../signing/signature.js';
import { removeStagingLeftovers } from '../sandbox/mount-staging.js';
import { PLUGIN_IDS, pluginGid, pluginUid } from '../runtimes/runtime.js';
import { giveSocketTo } from './plugin-socket.js';
import { HUB_SOCKET_NAME } from '../sandbox/container-spec.js';
import { Egress, isNetworked, normalizeHost, removeEgressLeftovers } from '../sandbox/egress.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import type { PrepareOptions } from '../images/plugin-image.js';
import { dependentsOf, startLevels } from './dependency-graph.js';
import { pluginSocketDir, type Home } from './home.js';
import { LogBuffer, type LogLine } from './log-buffer.js';
import { StateStore, type SavedPlugin } from './state-store.js';
import { Grants } from '../grants/grants.js';
import { AuditLog } from '../audit/audit-log.js';
import { LABEL } from '../labels.js';
import type { KernelDenial, SeccompKill } from '../violations/audit-records.js';
import { EXIT_SIGSYS, kernelDenialMessage, KernelWatch, seccompKillMessage } from '../violations/kernel-watch.js';

export type PluginState = 'loaded' | 'starting' | 'ready' | 'restarting' | 'stopping' | 'stopped' | 'exited' | 'failed';

/** What `ps` shows of a plugin. */
export interface PluginStatus {
  readonly id: string;
  readonly version: string;
  readonly runtime: string;
  readonly state: PluginState;
  readonly containerId?: string;
  readonly methods: readonly string[];
  readonly startedAt?: number;
  /** Load to ready, in ms, of the last start. */
  readonly startMs?: number;
  readonly exitCode?: number;
  readonly oomKilled?: boolean;
  readonly lastError?: { code: string; message: string };
  readonly droppedMessages: number;
  /** Restarts since it was loaded (crashes and failed health checks). */
  readonly restarts: number;
  /** When the next restart attempt is due (state restarting). */
  readonly restartAt?: number;
  /** The user its container runs as (its own): the owner a folder it is granted for writing needs. */
  readonly uid: number;
}

export interface ControllerOptions {
  readonly log: Logger;
  readonly home: Home;
  readonly docker?: Docker;
  /** How long a plugin has from container start to hello (default 15 s). */
  readonly startTimeoutMs?: number;
  /** How long a plugin has to exit after the shutdown message, then after SIGTERM (default 5 s each). */
  readonly stopGraceMs?: number;
  /** Hub options. */
  readonly hubToken?: string;
  readonly maxMessageBytes?: number;
  readonly pingIntervalMs?: number;
  /** Per-plugin hub rate limit in messages a second (default 20000; see Hub). */
  readonly rateLimit?: number;
  /** The other hub limits (host clients, queues, subscriptions); see Hub and hubLimitsFromEnv. */
  readonly hubLimits?: HubLimits;
  /** Audit trail rotation (size of a file, files kept); see AuditLog. */
  readonly auditRotation?: { readonly maxBytes?: number; readonly keep?: number };
  /** How often the engine is pinged while it answers (default 2 s). */
  readonly engineCheckMs?: number;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
  /** Operator policy every plugin is verified against at load (default: the file LOGOMESH_POLICY names, else none). */
  readonly policy?: Policy;
  /**
   * Existing networks the egress proxy joins besides its own bridge, so that plugins can
   * reach allowed hosts on them by name (a compose project's services, a test's servers).
   */
  readonly egressNetworks?: readonly string[];
  /**
   * Follow the kernel's records of plugin processes (default true), in the kernel log and
   * the audit daemon's: a seccomp kill is audited with the system call's name and stops the
   * plugin; a refusal reported by LogoMesh's kernel audit rules is audited.
   */
  readonly kernelLog?: boolean;
  /**
   * Test hooks at fixed points of a start, so that a test makes its swaps there and not by
   * timing: right before the plugin's host paths are resolved, once they are held and
   * staged (right before the container is created), and once a compiled plugin's build
   * context is taken.
   */
  readonly testHooks?: {
    readonly beforeMounts?: (pluginId: string) => void | Promise<void>;
    readonly afterMounts?: (pluginId: string) => void | Promise<void>;
    readonly afterSnapshot?: PrepareOptions['afterSnapshot'];
  };
}

interface Managed {
  readonly loaded: LoadedManifest;
  state: PluginState;
  container?: PluginContainer;
  startedAt?: number;
  startMs?: number;
  exitCode?: number;
  oomKilled?: boolean;
  lastError?: { code: string; message: string };
  readonly logs: LogBuffer;
  restarts: number;
  /** Consecutive failures; reset once the plugin has stayed ready for a while. */
  retries: number;
  readySince?: number;
  restartAt?: number;
  healthTimer?: NodeJS.Timeout;
  restartTimer?: NodeJS.Timeout;
  /** Settles when the current start or stop finishes: one lifecycle operation at a time. */
  op: Promise<unknown>;
  /** What its signature vouches for, as last verified (absent: unsigned). */
  signed?: SignedContent;
}

/**
 * The controller: loads plugin folders, starts each in its sandbox in dependency order,
 * connects them through the hub, and stops everything in reverse order. The spec's
 * LifecycleController and RuntimeCoordinator, in one object.
 */
export class Controller implements AsyncDisposable {
  readonly hub: Hub;
  readonly token: string;
  private readonly plugins = new Map<string, Managed>();
  private readonly log: Logger;
  private readonly startTimeoutMs: number;
  private readonly stopGraceMs: number;
  private closing?: Promise<void>;
  private readonly state: StateStore;
  readonly audit: AuditLog;
  /** The operator's revocations and grants (methods, topics, hosts, host paths): their one owner. */
  readonly grants: Grants;
  /**
   * What an earlier controller of this home (killed, so it left state.json) saved per plugin,
   * read once at construction: each entry is applied when its plugin is loaded, then dropped.
   * Entries of plugins not loaded (yet) are written back unchanged, so that loading a subset
   * does not forget the others' revocations.
   */
  private readonly inherited: Map<string, SavedPlugin>;
  private engine: { up: boolean; since: number; lastError?: string } = { up: true, since: Date.now() };
  private engineTimer?: NodeJS.Timeout;
  private resolvedPolicy?: Policy;
  /** Containers of an earlier controller of this home, adopted or removed before the first start. */
  private reconciled?: Promise<void>;
  /** The egress proxy, started with the first plugin that has network capabilities. */
  private egress?: Promise<Egress>;
  /** Seccomp kills read from the kernel log, tied to plugins. */
  private readonly kernel?: KernelWatch;
  /** When each kind of kernel denial was last audited, by plugin, rule and path: at most once a second. */
  private readonly deniedAt = new Map<string, number>();

  private constructor(
    private readonly docker: Docker,
    private readonly opts: ControllerOptions,
  ) {
    this.log = opts.log.child({ component: 'controller' });
    this.startTimeoutMs = opts.startTimeoutMs ?? 15_000;
    this.stopGraceMs = opts.stopGraceMs ?? 5_000;
    this.token = opts.hubToken ?? randomBytes(24).toString('base64url');
    this.state = new StateStore(opts.home.stateFile);
    this.inherited = new Map(Object.entries(this.state.read()?.plugins ?? {}).filter(([, p]) => p.permissions));
    this.audit = new AuditLog(opts.home.auditFile, { ...opts.auditRotation, onError: (err) => this.log.error({ err: err.message, file: opts.home.auditFile }, 'the audit trail cannot be written') });
    this.grants = new Grants({
      log: this.log,
      // The hub's aggregated counts of earlier decisions are written first, so the trail keeps their order.
      audit: (e) => {
        this.hub.flushAudit();
        this.audit.record(e);
      },
      plugin: (id) => this.get(id).loaded,
      plugins: () => [...this.plugins.values()].map((m) => m.loaded),
      homeDir: opts.home.dir,
      policy: () => this.policy,
      idsOf: (id) => this.idsOf(id),
      onChange: () => this.persist(),
      onPathExpired: (id, name) => {
        this.revokePath(id, name, 'expiry').catch((err: unknown) => this.log.warn({ plugin: id, err: errorText(err) }, 'revoking an expired path grant failed'));
      },
    });
    this.hub = new Hub({
      ...opts.hubLimits,
      isMethodRevoked: this.grants.isMethodRevoked,
      isTopicRevoked: this.grants.isTopicRevoked,
      log: opts.log,
      audit: this.audit.record,
      token: this.token,
      ...(opts.maxMessageBytes ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      ...(opts.pingIntervalMs ? { pingIntervalMs: opts.pingIntervalMs } : {}),
      ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
    });
    this.watchEngine(opts.engineCheckMs ?? 2_000);
    if (opts.kernelLog !== false) {
      this.kernel = new KernelWatch({
        log: this.log,
        uid: PLUGIN_IDS,
        ownerOf: (kill) => [...this.plugins.keys()].find((id) => pluginGid(opts.home.instance, id) === kill.gid),
        onKill: (plugin, kill) => void this.onSeccompKill(plugin, kill),
        onDenial: (plugin, denial) => this.onKernelDenial(plugin, denial),
        // Where the audit daemon's log is seen from here (a controller in a container mounts the host's).
        ...(process.env.LOGOMESH_AUDIT_LOG ? { auditLog: process.env.LOGOMESH_AUDIT_LOG } : {}),
      });
      if (this.kernel.unavailable) this.log.info({ reason: this.kernel.unavailable }, 'neither the kernel log nor the audit daemon\'s is readable: a plugin killed by seccomp is reported without the system call it made, and refusals inside the sandbox are not reported');
    }
  }

  /**
   * The kernel refused a plugin's system call inside its sandbox, and a LogoMesh audit rule
   * reported it: on the plugin's record (at most once a second per rule and path). The
   * refusal itself already happened; the plugin goes on.
   */
  private onKernelDenial(plugin: string, d: KernelDenial): void {
    const key = `${plugin}|${d.key}|${d.paths[0] ?? ''}`;
    const now = Date.now();
    if (now - (this.deniedAt.get(key) ?? 0) < 1_000) return;
    if (this.deniedAt.size > 1_000) this.deniedAt.clear();
    this.deniedAt.set(key, now);
    this.audit.record({ who: plugin, action: 'violation', resource: d.paths[0] ?? plugin, result: 'denied', code: 'LM_SANDBOX_DENIED', reason: kernelDenialMessage(d) });
  }

  /** A running plugin's egress proxy exited under it: restarted by its policy, with a new proxy. */
  private async onProxyGone(plugin: string): Promise<void> {
    const m = this.plugins.get(plugin);
    if (!m || m.state !== 'ready') return;
    await this.failed(m, { code: 'LM_EGRESS', message: `the egress proxy of plugin ${plugin} exited: the plugin had no way out any more` }, false);
  }

  /** A process of a running plugin was killed by seccomp: the plugin is stopped, not restarted. */
  private async onSeccompKill(plugin: string, kill: SeccompKill): Promise<void> {
    const m = this.plugins.get(plugin);
    if (!m || m.state !== 'ready') return;
    await this.failed(m, { code: 'LM_SECCOMP_VIOLATION', message: seccompKillMessage(plugin, kill) }, false, true);
  }

  /** Is the Docker engine answering? Shown by `ps`; restarts wait while it is not. */
  engineStatus(): { up: boolean; since: number; lastError?: string } {
    return { ...this.engine };
  }

  /**
   * Ping the engine; while it does not answer, say so once, retry with backoff (up to 15 s
   * apart), and hold plugin restarts. When it answers again, the containers it lost are
   * found by their exits and restarted; with the daemon's live-restore they never stop.
   */
  private watchEngine(everyMs: number): void {
    let delay = everyMs;
    const tick = async () => {
      try {
        await withTimeout(this.docker.ping(), 2_000, 'no answer within 2000 ms');
        if (!this.engine.up) {
          this.log.info({ downMs: Date.now() - this.engine.since }, 'the Docker engine answers again');
          this.engine = { up: true, since: Date.now() };
          // The egress proxies kept running (live-restore): follow their decisions again, re-check the host firewall.
          void this.egress?.then((e) => e.engineBack()).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'egress after the engine came back'));
        }
        delay = everyMs;
      } catch (err) {
        const reason = errorText(err);
        if (this.engine.up) {
          this.engine = { up: false, since: Date.now(), lastError: reason };
          this.log.error({ reason }, `LM_ENGINE_UNAVAILABLE: the Docker engine does not answer (${reason}); retrying with backoff, plugin restarts wait for it`);
        }
        delay = Math.min(delay * 2, 15_000);
      }
      if (!this.closing) {
        this.engineTimer = setTimeout(() => void tick(), delay);
        this.engineTimer.unref();
      }
    };
    this.engineTimer = setTimeout(() => void tick(), delay);
    this.engineTimer.unref();
  }

  static async create(opts: ControllerOptions): Promise<Controller> {
    const docker = await connectEngine(opts.docker);
    return new Controller(docker, opts);
  }

  get home(): Home {
    return this.opts.home;
  }

  /**
   * Load every plugin folder under `dir` (each holds a manifest), or `dir` itself if it is
   * one. All manifests are validated before any is loaded; duplicate ids, missing
   * dependencies and cycles are refused. Returns the ids loaded.
   */
  loadDirectory(dir: string): string[] {
    const folders = pluginFolders(dir);
    const loaded: LoadedManifest[] = [];
    const issues: ManifestIssue[] = [];
    for (const f of folders) {
      try {
        loaded.push(loadManifest(f));
      } catch (err) {
        if (err instanceof ManifestRejectedError) issues.push(...err.issues);
        else throw err;
      }
    }
    if (issues.length) throw new ManifestRejectedError(path.resolve(dir), issues);
    return this.load(loaded);
  }

  /** Add validated manifests; the whole set is checked for id clashes and dependencies. */
  load(manifests: readonly LoadedManifest[]): string[] {
    // Throws LM_SIGNATURE before anything is loaded; what each signature vouches for is kept.
    const signed = new Map(manifests.map((l) => [l, this.verifyAtLoad(l)] as const));
    for (const l of manifests) this.enforcePolicyAudited(l); // throws LM_POLICY_DENIED
    const next = new Map(this.plugins);
    for (const l of manifests) {
      const clash = next.get(l.manifest.id);
      if (clash) {
        throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin id ${l.manifest.id} is declared by both ${clash.loaded.file} and ${l.file}`, {
          file: l.file,
          path: '/id',
          expected: 'a plugin id not used by another loaded plugin',
          found: l.manifest.id,
        });
      }
      const s = signed.get(l);
      next.set(l.manifest.id, { loaded: l, state: 'loaded', logs: new LogBuffer(), op: Promise.resolve(), restarts: 0, retries: 0, ...(s ? { signed: s } : {}) });
    }
    startLevels(this.graphOf(next)); // throws LM_DEPENDENCY
    this.checkDistinctUsers(next);
    const saved = this.state.read();
    for (const l of manifests) {
      const m = next.get(l.manifest.id)!;
      // Restart counts survive a controller restart, for the same manifest.
      const before = saved?.plugins[l.manifest.id];
      if (before?.manifestHash === l.hash) m.restarts = before.restarts;
      this.plugins.set(l.manifest.id, m);
      this.restorePermissions(m);
    }
    this.persist();
    return manifests.map((l) => l.manifest.id);
  }

  /** The plugin's own user and group (pluginUid, pluginGid) under this controller. */
  private idsOf(pluginId: string): [uid: number, gid: number] {
    return [pluginUid(this.opts.home.instance, pluginId), pluginGid(this.opts.home.instance, pluginId)];
  }

  /** Its hub socket, just (re)created by the hub, to the plugin's own user: mode 0600, nobody else connects. */
  private giveSocket(pluginId: string): void {
    giveSocketTo(path.join(pluginSocketDir(this.opts.home, pluginId), HUB_SOCKET_NAME), ...this.idsOf(pluginId), this.log);
  }

  /** verifyPlugin at load, audited either way (`verify` allowed or denied). */
  private verifyAtLoad(l: LoadedManifest): SignedContent | undefined {
    try {
      const v = verifyPlugin(l, this.opts.policy);
      this.audit.record({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'allowed', reason: `${v.status} (at load)` });
      return signedContentOf(v);
    } catch (err) {
      const e = err as LogoMeshError;
      this.audit.record({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'denied', code: e.code ?? 'LM_SIGNATURE', reason: e.message });
      throw err;
    }
  }

  /**
   * Two plugins whose derived users coincide (about one chance in 10^8 per pair) would share
   * their files and sockets: refused (LM_PLUGIN_CONFLICT), as for a shared id.
   */
  private checkDistinctUsers(plugins: Map<string, Managed>): void {
    const byUid = new Map<number, string>();
    for (const id of plugins.keys()) {
      const [uid] = this.idsOf(id);
      const other = byUid.get(uid);
      if (other !== undefined) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugins ${other} and ${id} would run as the same user (uid ${uid}) under instance ${this.opts.home.instance}; rename one of them`, { expected: 'a user of its own for each plugin', found: `uid ${uid} for ${other} and ${id}` });
      byUid.set(uid, id);
    }
  }

  /** Start every loaded plugin, a dependency level at a time, each level in parallel. */
  async startAll(): Promise<void> {
    await this.reconcile();
    const failures: { id: string; error: unknown }[] = [];
    const levels = startLevels(this.graphOf(this.plugins));
    for (const level of levels) {
      const results = await Promise.allSettled(level.map((id) => this.start(id)));
      results.forEach((r, i) => {
        if (r.status === 'rejected') failures.push({ id: level[i]!, error: r.reason });
      });
      if (failures.length) break;
    }
    const first = failures[0];
    if (!first) return;
    // The first failure keeps its own code (LM_START_TIMEOUT, LM_IMAGE_BUILD, ...); the
    // message adds what else failed and what was not started because of it.
    const notStarted = [...this.plugins.values()].filter((m) => m.state === 'loaded').map((m) => m.loaded.manifest.id);
    const others = failures.slice(1).map((f) => `${f.id}: ${(f.error as Error).message}`);
    const e = first.error instanceof LogoMeshError ? first.error : new LogoMeshError('LM_ENGINE_ERROR', String((first.error as Error)?.message ?? first.error), {});
    throw new LogoMeshError(
      e.code,
      `plugin ${first.id} failed to start: ${e.message}${others.length ? `\nalso failed:\n${others.join('\n')}` : ''}${notStarted.length ? `\nnot started: ${notStarted.join(', ')}` : ''}`,
      { ...e.details, plugin: first.id, notStarted, alsoFailed: failures.slice(1).map((f) => f.id) },
      { cause: e },
    );
  }

  /** Start one plugin (its dependencies must be ready). Resolves when it said hello. */
  async start(id: string): Promise<void> {
    const m = this.get(id);
    await this.reconcile();
    // A start by hand ends a crash loop: it begins with a clean count.
    if (m.state === 'failed' || m.state === 'exited') m.retries = 0;
    return this.serialize(m, () => this.doStart(m));
  }

  /**
   * Find the containers an earlier controller of this home left (it was killed, or the
   * machine restarted): adopt each running one whose plugin is loaded with the same manifest
   * (its SDK reconnects to the recreated socket and says hello again), and remove every
   * other one, duplicates included. Runs once, before the first start.
   */
  reconcile(): Promise<void> {
    this.reconciled ??= this.doReconcile();
    return this.reconciled;
  }

  private async doReconcile(): Promise<void> {
    await removeStagingLeftovers(this.log); // of a controller or run killed between staging and start
    const filters = JSON.stringify({ label: [`${LABEL.instance}=${this.opts.home.instance}`, `${LABEL.role}=plugin`] });
    const found = (await this.docker.listContainers({ all: true, filters })).sort((a, b) => b.Created - a.Created);
    const taken = new Set<string>();
    const adoptions: Promise<void>[] = [];
    for (const c of found) {
      const id = c.Labels[LABEL.plugin] ?? '';
      const m = this.plugins.get(id);
      // Never adopted: a networked plugin (its network and proxy went with the earlier
      // controller; it is started anew, and its host revocations applied to the new
      // allow-list), or a container whose operator path grants are not exactly the ones
      // restored from state.json (one was dropped, ran out, or was never saved).
      const usable =
        m &&
        !taken.has(id) &&
        c.State === 'running' &&
        c.Labels[LABEL.manifestHash] === m.loaded.hash &&
        m.state === 'loaded' &&
        !isNetworked(m.loaded.manifest) &&
        this.mountsMatchGrants(id, c);
      if (!usable) {
        this.log.warn({ plugin: id, container: c.Id.slice(0, 12), state: c.State }, 'removing a plugin container left by an earlier controller');
        await PluginContainer.adopt(this.docker, c.Id, this.log).remove();
        continue;
      }
      taken.add(id);
      adoptions.push(this.serialize(m, () => this.adopt(m, c.Id)));
    }
    await Promise.allSettled(adoptions);
  }

  private async adopt(m: Managed, containerId: string): Promise<void> {
    const { id } = m.loaded.manifest;
    m.state = 'starting';
    const container = PluginContainer.adopt(this.docker, containerId, this.log.child({ plugin: id }));
    m.container = container;
    // Listen before the socket exists: the running plugin reconnects the moment it appears.
    let ready: ReturnType<Controller['waitReady']> | undefined;
    try {
      await this.hub.detachPlugin(id);
      ready = this.waitReady(id);
      await this.hub.attachPlugin(policyOf(m.loaded.manifest), path.join(pluginSocketDir(this.opts.home, id), HUB_SOCKET_NAME));
      this.giveSocket(id);
      await container.attach(m.logs.writable('stdout'), m.logs.writable('stderr'), false);
      const exited = container.wait();
      this.watchExit(m, container, exited);
      await Promise.race([ready.promise, exited.then((code) => Promise.reject(this.exitedBeforeReady(m, code)))]).finally(ready.cancel);
      m.state = 'ready';
      m.readySince = Date.now();
      m.startedAt = Date.now();
      this.startHealth(m);
      this.log.info({ plugin: id, container: containerId.slice(0, 12) }, 'adopted a running plugin container');
      this.persist();
    } catch (err) {
      ready?.cancel();
      this.log.warn({ plugin: id, err: (err as Error).message }, 'could not adopt a running plugin container; it is removed and started anew');
      await this.teardown(m);
      delete m.container;
      m.state = 'loaded';
    }
  }

  /**
   * Does the container carry exactly the operator path grants held for its plugin now: the
   * same names, real paths and modes? An adopted container keeps its mounts, so anything
   * else would leave a plugin with a mount no grant covers, or without one it was granted.
   */
  private mountsMatchGrants(id: string, c: ContainerInfo): boolean {
    return hasOperatorMounts(c, this.grants.paths(id));
  }


  /**
   * Apply again what the operator changed on this plugin under an earlier controller of this
   * home. Called at load: before the plugin is attached to the hub, adopted or started, so
   * its first call already meets them. A temporary grant resumes with the time it has left;
   * one that ran out while no controller ran is revoked now, as its timer would have done.
   * A path grant goes through the checks of grant time again and is dropped if it fails
   * them now. Every step is audited.
   */
  private restorePermissions(m: Managed): void {
    const id = m.loaded.manifest.id;
    const saved = this.inherited.get(id)?.permissions;
    this.inherited.delete(id);
    if (!saved) return;
    this.grants.restore(id, saved, `restored from ${this.opts.home.stateFile} after a controller restart`);
    this.log.info({ plugin: id }, 'restored the operator permission changes of the earlier controller');
  }

  /**
   * Save what a restarted controller needs: folders, restart counts, containers, and the
   * operator's permission changes. Called on every change of them.
   */
  private persist(): void {
    if (this.closing) return;
    const plugins: Record<string, SavedPlugin> = Object.fromEntries(this.inherited);
    for (const [id, m] of this.plugins) {
      const permissions = this.grants.saved(id);
      plugins[id] = { restarts: m.restarts, manifestHash: m.loaded.hash, ...(m.container ? { containerId: m.container.id } : {}), ...(permissions ? { permissions } : {}) };
    }
    try {
      this.state.write({ version: 1, folders: [...this.plugins.values()].map((m) => m.loaded.pluginDir), plugins });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.opts.home.stateFile }, 'could not save the controller state');
    }
  }

  /** At a clean stop: state.json keeps only the plugins' saved permissions, or goes if there are none. */
  private keepPermissionsOnly(): void {
    const plugins: Record<string, SavedPlugin> = {};
    for (const [id, p] of this.inherited) if (p.permissions) plugins[id] = { restarts: 0, manifestHash: p.manifestHash, permissions: p.permissions };
    for (const [id, m] of this.plugins) {
      const permissions = this.grants.saved(id);
      if (permissions) plugins[id] = { restarts: 0, manifestHash: m.loaded.hash, permissions };
    }
    try {
      if (Object.keys(plugins).length === 0) rmSync(this.opts.home.stateFile, { force: true });
      else this.state.write({ version: 1, folders: [], plugins });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.opts.home.stateFile }, 'could not save the operator permissions');
    }
  }

  /** Stop one plugin: shutdown message, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(id: string): Promise<void> {
    const m = this.get(id);
    return this.serialize(m, () => this.doStop(m));
  }

  async restart(id: string): Promise<void> {
    await this.stop(id);
    await this.start(id);
  }

  /** Stop and forget a plugin. Refused while a running plugin depends on it. */
  async unload(id: string): Promise<void> {
    const m = this.get(id);
    const running = dependentsOf(this.graphOf(this.plugins), id).filter((d) => ['starting', 'ready'].includes(this.plugins.get(d)!.state));
    if (running.length) {
      throw new LogoMeshError('LM_DEPENDENCY', `cannot unload ${id}: running plugins depend on it (${running.join(', ')})`, { dependents: running });
    }
    await this.stop(id);
    this.plugins.delete(m.loaded.manifest.id);
  }

  /**
   * Take a method (`plugin.method`, or a host method) away from a plugin: its next call is
   * LM_PERMISSION_DENIED. Takes effect at once on the hub; calls already in flight finish.
   */
  revokeMethod(pluginId: string, method: string): void {
    this.grants.revokeMethod(pluginId, method);
  }

  /**
   * Take a topic pattern, exactly as the manifest lists it under coordination.publishes or
   * .subscribes, away from a plugin: from its next message on it no longer publishes or
   * hears what only that pattern covers. Throws LM_PERMISSION_DENIED for a pattern the
   * manifest does not list.
   */
  revokeTopic(pluginId: string, pattern: string): void {
    this.grants.revokeTopic(pluginId, pattern);
  }

  /** Give back a topic pattern revoked with `revokeTopic`, for `ttlMs` only if given (then it is revoked again). */
  grantTopic(pluginId: string, pattern: string, ttlMs?: number): void {
    this.grants.grantTopic(pluginId, pattern, ttlMs);
  }

  /**
   * Take a host (as the manifest lists it, `api.example.com:443`) off a plugin's network
   * allow-list. A running plugin's next connection there is refused, and the proxy cuts
   * those already open. The revocation stays, across restarts of the plugin and of the controller,
   * until `grantHost` gives the host back. Returns whether a running proxy's allow-list
   * changed now (false: the plugin is not running, it applies at its next start). Throws
   * LM_PERMISSION_DENIED for a host the manifest does not list: a typo must not look done.
   */
  async revokeHost(pluginId: string, spelled: string): Promise<boolean> {
    const host = this.grants.revokeHost(pluginId, spelled);
    return this.egress ? (await this.egress).revokeHost(pluginId, host) : false;
  }

  /**
   * Give back a host revoked with `revokeHost`. The manifest is the upper bound: a host its
   * network capabilities do not list cannot be granted (LM_PERMISSION_DENIED). The proxy's
   * allow-list of a running plugin can only shrink, so a running plugin's container is
   * recreated with its new network (as for a path grant); a stopped one gets the host at
   * its next start. Throws what the restart throws.
   */
  async grantHost(pluginId: string, spelled: string): Promise<void> {
    const m = this.get(pluginId);
    const { host, wasRevoked } = this.grants.grantHost(pluginId, spelled);
    if (wasRevoked) await this.recreate(m, `host grant ${host}`);
  }

  /** The egress proxy, started on first use (one per controller). */
  private egressProxy(): Promise<Egress> {
    this.egress ??= (async () => {
      const { home } = this.opts;
      await removeEgressLeftovers(this.docker, home.instance);
      const egress = await Egress.start({
        docker: this.docker,
        instance: home.instance,
        log: this.log,
        configDir: path.join(home.dir, 'egress'),
        audit: this.audit.record,
        ...(this.opts.egressNetworks ? { networks: this.opts.egressNetworks } : {}),
      });
      egress.onProxyGone((id) => void this.onProxyGone(id));
      return egress;
    })();
    // A failed start is tried again by the next networked plugin.
    this.egress.catch(() => (this.egress = undefined));
    return this.egress;
  }

  /**
   * Give back a revoked method, optionally only for `ttlMs` (then it is revoked again). The
   * manifest is the upper bound: a method it does not declare cannot be granted.
   */
  grantMethod(pluginId: string, method: string, ttlMs?: number): void {
    this.grants.grantMethod(pluginId, method, ttlMs);
  }


/** The policy in force: the one given, else the file LOGOMESH_POLICY names, else none. */
  get policy(): Policy {
    return this.opts.policy ?? (this.resolvedPolicy ??= resolvePolicy(undefined));
  }

  /** enforcePolicy, audited: allowed or denied with every violation. */
  private enforcePolicyAudited(l: LoadedManifest): void {
    const id = l.manifest.id;
    try {
      enforcePolicy(l, this.policy);
      this.audit.record({ who: 'controller', action: 'policy', resource: id, result: 'allowed' });
    } catch (err) {
      const e = err as LogoMeshError;
      this.audit.record({ who: 'controller', action: 'policy', resource: id, result: 'denied', code: e.code, reason: e.message });
      throw err;
    }
  }

  /**
   * Grant a host path to a plugin, mounted at /grants/<name> (read-only unless `write`),
   * for `ttlMs` only if given. Allowed only where the policy's hostPaths cover its real
   * path for that permission and plugin, and never inside the plugin folder or the
   * controller's home. Mounts cannot change on a running container, so a running plugin's
   * container is recreated (stop, then start through the usual lifecycle); a stopped one
   * gets the mount at its next start. A grant of the same name replaces the earlier one.
   * Throws LM_POLICY_DENIED, LM_GRANT_PATH, LM_PATH_NOT_WRITABLE, or what the restart throws.
   */
  async grantPath(pluginId: string, target: string, opts: { write?: boolean; ttlMs?: number } = {}): Promise<PathGrant> {
    const m = this.get(pluginId);
    const grant = this.grants.grantPath(pluginId, target, opts);
    await this.recreate(m, `path grant ${grant.name}`);
    return grant;
  }

  /**
   * Take a granted host path (by name, or by the host path given) away from a plugin. A
   * running plugin's container is recreated without the mount. Throws LM_GRANT_PATH when
   * no such grant exists.
   */
  async revokePath(pluginId: string, nameOrPath: string, who = 'operator'): Promise<PathGrant> {
    const m = this.get(pluginId);
    let wasRunning = false;
    const g = await this.grants.revokePath(pluginId, nameOrPath, who, async () => {
      // At once: the container is killed without the shutdown message or SIGTERM's grace, so a
      // plugin that ignores both cannot keep reading or writing; the entry says when it ended.
      wasRunning = m.state === 'ready' || m.state === 'starting';
      const ended = wasRunning && m.container ? await this.killAtOnce(m) : undefined;
      return ended === undefined ? 'the plugin was not running' : `access ended at ${new Date(ended).toISOString()}: the container was killed at once, without grace`;
    });
    if (wasRunning) await this.recreate(m, `path revocation ${g.name}`, true);
    return g;
  }

  /** The host paths granted to a plugin now. */
  grantedPaths(pluginId: string): PathGrant[] {
    this.get(pluginId);
    return this.grants.paths(pluginId);
  }

  /**
   * Kill a plugin's container now (SIGKILL, no grace) and wait for its end; its exit is
   * expected, not a failure. Returns when the kill was confirmed (ms since the epoch).
   */
  private async killAtOnce(m: Managed): Promise<number> {
    this.stopTimers(m);
    m.state = 'stopping';
    await m.container!.kill();
    return Date.now();
  }

  /** Mounts change only with a new container: stop and start a running plugin (or one just killed: `killed`), audited. */
  private async recreate(m: Managed, why: string, killed = false): Promise<void> {
    const id = m.loaded.manifest.id;
    if (!killed && m.state !== 'ready' && m.state !== 'starting') return; // takes effect at its next start
    this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'stopping', reason: why });
    await this.stop(id);
    try {
      await this.start(id);
      this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'ready', reason: why });
    } catch (err) {
      this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'failed', code: (err as LogoMeshError).code ?? 'LM_ENGINE_ERROR', reason: (err as Error).message });
      throw err;
    }
  }

  /**
   * May the plugin do `action` on `resource`, as its manifest, the operator's grants and the
   * policy stand now? Audited. Actions:
   * - `read` / `write` a host path: inside the plugin folder (read), a manifest grant, or an
   *   operator path grant (write needs a writable one);
   * - `connect` to `host[:port]`: a network capability covers it and the policy allows it;
   * - `call` a `plugin.method` (or host method): declared and not revoked;
   * - `scope` (filesystem, network, ...): the manifest declares it and the policy allows it.
   */
  checkCapability(pluginId: string, action: string, resource: string): { allowed: boolean; reason: string } {
    const m = this.get(pluginId);
    const decision = this.decide(m, action, resource);
    this.audit.record({ who: 'controller', action: 'check', resource: `${pluginId}:${action}:${resource}`, result: decision.allowed ? 'allowed' : 'denied', reason: decision.reason });
    return decision;
  }

  private decide(m: Managed, action: string, resource: string): { allowed: boolean; reason: string } {
    const { manifest, pluginDir, grantedPaths } = m.loaded;
    const id = manifest.id;
    const violations = policyViolations(m.loaded, this.policy);
    if (violations.length) return { allowed: false, reason: `the manifest breaks the policy (${violations.map((v) => `${v.path}: ${v.rule}`).join('; ')})` };
    switch (action) {
      case 'read':
      case 'write': {
        if (!path.isAbsolute(resource)) return { allowed: false, reason: `'${resource}' is not an absolute host path` };
        let real: string;
        try {
          real = realpathSync(resource);
        } catch {
          real = path.resolve(resource);
        }
        const inside = (dir: string) => real === dir || real.startsWith(dir + path.sep);
        const write = action === 'write';
        if (!write && inside(pluginDir)) return { allowed: true, reason: `inside the plugin folder ${pluginDir} (read-only)` };
        const byManifest = grantedPaths.find((g) => inside(g.hostPath) && (!write || g.writable));
        if (byManifest) return { allowed: true, reason: `capability '${byManifest.capability}' grants ${byManifest.hostPath}${write ? ' for writing' : ''}` };
        const byOperator = this.grants.paths(id).find((g) => inside(g.hostPath) && (!write || g.writable));
        if (byOperator) return { allowed: true, reason: `the operator granted ${byOperator.hostPath} at ${byOperator.containerPath}${write ? ' for writing' : ''} (policy rule ${byOperator.rule})` };
        return { allowed: false, reason: `no manifest capability or operator grant covers ${real} for ${action}` };
      }
      case 'connect': {
        const revoked = new Set(this.grants.revokedHosts(id));
        const cap = manifest.capabilities.find((c) => c.scope === 'network' && c.hosts?.some((h) => !revoked.has(normalizeHost(h) ?? h) && hostCovered(h, resource)));
        if (!cap) {
          const taken = [...revoked].find((h) => hostCovered(h, resource));
          return { allowed: false, reason: taken ? `the operator revoked '${taken}'` : `no network capability of the manifest covers '${resource}'` };
        }
        const p = policyAllowsHost(this.policy, resource, id);
        return p.allowed ? { allowed: true, reason: `capability '${cap.id}' covers it; ${p.reason}` } : p;
      }
      case 'call': {
        if (!manifest.coordination.consumesMethods.includes(resource)) return { allowed: false, reason: `'${resource}' is not declared under coordination.consumesMethods` };
        if (this.grants.isMethodRevoked(id, resource)) return { allowed: false, reason: `the operator revoked '${resource}'` };
        return { allowed: true, reason: `declared under coordination.consumesMethods` };
      }
      case 'scope': {
        const cap = manifest.capabilities.find((c) => c.scope === resource);
        if (!cap) return { allowed: false, reason: `the manifest declares no capability of scope '${resource}'` };
        return { allowed: true, reason: `capability '${cap.id}' (the policy allows the scope)` };
      }
      default:
        return { allowed: false, reason: `unknown action '${action}' (read, write, connect, call, scope)` };
    }
  }

  call(target: string, method: string, data: unknown, timeoutMs?: number): Promise<unknown> {
    return this.hub.call(target, method, data, timeoutMs);
  }

  registerMethod(name: string, handler: HostMethod): void {
    this.hub.registerHostMethod(name, handler);
  }

  on(topic: string, handler: (data: unknown, meta: { from: string; topic: string }) => void): () => void {
    return this.hub.subscribe(topic, handler);
  }

  emit(topic: string, data: unknown, to?: string[]): void {
    this.hub.emitEvent(topic, data, to);
  }

  broadcast(topic: string | undefined, data: unknown): void {
    this.hub.broadcast(topic, data);
  }

  list(): PluginStatus[] {
    return [...this.plugins.values()].map((m) => this.status(m)).sort((a, b) => a.id.localeCompare(b.id));
  }

  status(m: Managed | string): PluginStatus {
    const p = typeof m === 'string' ? this.get(m) : m;
    const hub = this.hub.stats(p.loaded.manifest.id);
    const { id, version, runtime } = p.loaded.manifest;
    return {
      id,
      version,
      runtime,
      state: p.state,
      methods: hub?.methods ?? [],
      droppedMessages: hub?.droppedMessages ?? 0,
      restarts: p.restarts,
      uid: this.idsOf(id)[0],
      ...(p.state === 'restarting' && p.restartAt ? { restartAt: p.restartAt } : {}),
      ...(p.container ? { containerId: p.container.id } : {}),
      ...(p.startedAt !== undefined ? { startedAt: p.startedAt } : {}),
      ...(p.startMs !== undefined ? { startMs: p.startMs } : {}),
      ...(p.exitCode !== undefined ? { exitCode: p.exitCode } : {}),
      ...(p.oomKilled ? { oomKilled: true } : {}),
      ...(p.lastError ? { lastError: p.lastError } : {}),
    };
  }

  logs(id: string, lines?: number): LogLine[] {
    return this.get(id).logs.tail(lines);
  }

  followLogs(id: string, fn: (line: LogLine) => void): () => void {
    return this.get(id).logs.follow(fn);
  }

  /** Stop every plugin in reverse dependency order, close the hub, remove sockets. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.engineTimer);
      this.kernel?.close();
      let levels: string[][];
      try {
        levels = startLevels(this.graphOf(this.plugins)).reverse();
      } catch {
        levels = [[...this.plugins.keys()]];
      }
      for (const level of levels) await Promise.allSettled(level.map((id) => this.stop(id)));
      await this.hub.close();
      if (this.egress) await this.egress.then((e) => e.close()).catch(() => undefined);
      rmSync(this.opts.home.socketsDir, { recursive: true, force: true });
      // A clean stop leaves nothing to adopt; the operator's revocations and grants are
      // security decisions, and stay for the next controller of this home.
      this.keepPermissionsOnly();
      this.grants.close();
      await this.audit.close();
      // Whatever a failed stop left behind still carries this controller's label.
      await removeByLabel(this.docker, this.opts.home.instance).catch(() => undefined);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ---------------------------------------------------------------------------

  private get(id: string): Managed {
    const m = this.plugins.get(id);
    if (!m) {
      throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `no plugin ${id} is loaded (loaded: ${[...this.plugins.keys()].join(', ') || 'none'})`, {
        expected: 'a loaded plugin id',
        found: id,
      });
    }
    return m;
  }

  private graphOf(plugins: Map<string, Managed>) {
    return [...plugins.values()].map((m) => ({ id: m.loaded.manifest.id, dependsOn: m.loaded.manifest.dependencies.plugins }));
  }

  private serialize<T>(m: Managed, fn: () => Promise<T>): Promise<T> {
    const run = m.op.then(fn, fn);
    m.op = run.catch(() => undefined);
    return run;
  }

  private async doStart(m: Managed): Promise<void> {
    if (m.state === 'ready' || m.state === 'starting') return;
    this.stopTimers(m);
    if (this.closing) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', 'the controller is shutting down', {});
    const { id } = m.loaded.manifest;
    for (const dep of m.loaded.manifest.dependencies.plugins) {
      if (!this.hub.isReady(dep)) throw new LogoMeshError('LM_DEPENDENCY', `cannot start ${id}: its dependency ${dep} is not ready`, { plugin: id, dependency: dep });
    }
    m.state = 'starting';
    delete m.exitCode;
    delete m.oomKilled;
    const t0 = Date.now();
    let ready: { promise: Promise<void>; cancel: () => void } | undefined;
    let sandbox: PreparedSandbox | undefined;
    try {
      await this.verifyAgain(m); // throws LM_SIGNATURE: the folder may have changed since load
      let loadStart = Date.now();
      let operatorGrants: readonly PathGrant[] = [];
      const hooks = this.opts.testHooks;
      const socketDir = pluginSocketDir(this.opts.home, id);
      sandbox = await prepareSandbox({
        docker: this.docker,
        loaded: m.loaded,
        instance: this.opts.home.instance,
        log: this.log,
        policy: this.policy,
        audit: this.audit.record,
        hubSocketDir: socketDir,
        name: `lm-${id}-${randomBytes(3).toString('hex')}`,
        ...(this.opts.progress ? { progress: this.opts.progress } : {}),
        ...(m.signed ? { signed: m.signed } : {}),
        operatorMounts: () => (operatorGrants = this.grants.recheckPaths(id)), // throws LM_GRANT_PATH
        network: async (loaded) => {
          const egress = await this.egressProxy();
          const network = await egress.attach(id, loaded.manifest);
          // The attachment lists the manifest's hosts; the operator's revocations are taken
          // off before the container exists, so the plugin never reaches a revoked host.
          for (const host of this.grants.revokedHosts(id)) await egress.revokeHost(id, host);
          return network;
        },
        hooks: {
          beforeMounts: async () => {
            loadStart = Date.now();
            await hooks?.beforeMounts?.(id);
          },
          ...(hooks?.afterMounts ? { afterMounts: () => hooks.afterMounts!(id) } : {}),
          ...(hooks?.afterSnapshot ? { afterSnapshot: hooks.afterSnapshot } : {}),
        },
      });
      if (!sandbox) throw new LogoMeshError('LM_INTERRUPTED', `the start of ${id} was aborted`, { plugin: id });
      const { spec } = sandbox;
      await this.hub.detachPlugin(id);
      await this.hub.attachPlugin(policyOf(m.loaded.manifest), path.join(socketDir, HUB_SOCKET_NAME));
      this.giveSocket(id);
      const container = await PluginContainer.create(this.docker, spec, this.log.child({ plugin: id }));
      m.container = container;
      await container.attach(m.logs.writable('stdout'), m.logs.writable('stderr'));
      ready = this.waitReady(id);
      // A grant revoked while this start was under way is not mounted after all.
      for (const g of operatorGrants) if (this.grants.path(id, g.name) !== g) throw new LogoMeshError('LM_GRANT_PATH', `plugin ${id}: the path grant ${g.name} was revoked while the plugin was starting; the container is not started`, { plugin: id, grant: g.name });
      sandbox.verify(); // throws LM_PATH_CHANGED
      await container.start();
      await sandbox.release(); // the container holds its own mounts now
      m.startedAt = Date.now();
      const exited = container.wait();
      this.watchExit(m, container, exited);
      await Promise.race([ready.promise, exited.then(async (code) => Promise.reject(await this.exitedBeforeReady(m, code)))]).finally(ready.cancel);
      m.state = 'ready';
      m.readySince = Date.now();
      m.startMs = Date.now() - loadStart;
      this.startHealth(m);
      this.persist();
      this.audit.record({ who: 'controller', action: 'start', resource: id, result: 'ready' });
      this.log.info({ plugin: id, ms: m.startMs, total: Date.now() - t0 }, 'plugin ready');
    } catch (err) {
      ready?.cancel();
      await sandbox?.release();
      const e = err instanceof LogoMeshError ? err : new LogoMeshError('LM_ENGINE_ERROR', (err as Error).message, {}, { cause: err });
      this.audit.record({ who: 'controller', action: 'start', resource: id, result: 'failed', code: e.code, reason: e.message });
      m.state = 'failed';
      m.lastError = { code: e.code, message: e.message };
      await this.teardown(m);
      throw e;
    }
  }

  /**
   * Verify the plugin's signature again before each container is created: a folder changed
   * after load (a file edited, added or removed) is refused at its next start or restart,
   * not only at the next load. Audited either way.
   */
  private async verifyAgain(m: Managed): Promise<void> {
    const id = m.loaded.manifest.id;
    try {
      // Hashed a chunk at a time: a large folder never holds the hub's other plugins.
      const v = await verifyPluginAsync(m.loaded, this.opts.policy);
      m.signed = signedContentOf(v);
      this.audit.record({ who: 'controller', action: 'verify', resource: id, result: 'allowed', reason: v.status });
    } catch (err) {
      const e = err as LogoMeshError;
      this.audit.record({ who: 'controller', action: 'verify', resource: id, result: 'denied', code: e.code ?? 'LM_SIGNATURE', reason: e.message });
      throw err;
    }
  }

  private waitReady(id: string): { promise: Promise<void>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<void>((resolve, reject) => {
      const onReady = (readyId: string) => {
        if (readyId === id) resolve();
      };
      const timer = setTimeout(() => {
        const logs = this.plugins.get(id)?.logs.tail(20).map((l) => l.text) ?? [];
        reject(
          new LogoMeshError('LM_START_TIMEOUT', `plugin ${id} did not say hello within ${this.startTimeoutMs} ms${logs.length ? `; last output:\n${logs.join('\n')}` : ' and wrote nothing'}`, {
            plugin: id,
            logTail: logs,
          }),
        );
      }, this.startTimeoutMs);
      this.hub.on('ready', onReady);
      cancel = () => {
        clearTimeout(timer);
        this.hub.off('ready', onReady);
      };
    });
    // A start that fails before it awaits this (the engine refuses the container) cancels
    // it; until then, a timeout nobody awaits must not become an unhandled rejection.
    promise.catch(() => undefined);
    return { promise, cancel };
  }

  private async exitedBeforeReady(m: Managed, code: number): Promise<LogoMeshError> {
    const id = m.loaded.manifest.id;
    const logs = m.logs.tail(20).map((l) => l.text);
    // Also called (and ignored) for an exit after ready: onExit handles that one.
    if (code === EXIT_SIGSYS && this.kernel && m.state === 'starting') {
      const kill = await this.kernel.take(id, m.startedAt ?? 0, 1_000);
      const message = seccompKillMessage(id, kill);
      this.audit.record({ who: id, action: 'violation', resource: id, result: 'killed', code: 'LM_SECCOMP_VIOLATION', reason: message });
      return new LogoMeshError('LM_SECCOMP_VIOLATION', `${message}${logs.length ? `; last output:\n${logs.join('\n')}` : ''}`, { plugin: id, exitCode: code, logTail: logs, ...(kill ? { syscall: kill.name } : {}) });
    }
    return new LogoMeshError('LM_PLUGIN_EXITED', `plugin ${id} exited with code ${code} before it became ready${logs.length ? `; last output:\n${logs.join('\n')}` : ''}`, {
      plugin: id,
      exitCode: code,
      logTail: logs,
    });
  }

  /**
   * React to the container's end, whatever ends it. A wait that fails (the engine went
   * away) counts as an exit: the plugin is restarted once the engine answers again.
   */
  private watchExit(m: Managed, container: PluginContainer, exited: Promise<number>): void {
    exited
      .then(
        (code) => this.onExit(m, container, code),
        () => this.waitLost(m, container),
      )
      .catch((err: unknown) => this.log.error({ plugin: m.loaded.manifest.id, err: errorText(err) }, 'handling a plugin exit failed'));
  }

  /**
   * The engine dropped the wait (it restarted, or went away). That is not the plugin
   * exiting: once the engine answers again, look at the container; with the daemon's
   * live-restore it is still running and is simply watched again.
   */
  private async waitLost(m: Managed, container: PluginContainer): Promise<void> {
    while (!this.closing && m.container === container) {
      await delay(500);
      if (!this.engine.up) continue;
      let state;
      try {
        state = (await container.inspect()).State;
      } catch (err) {
        if (engineStatus(err) === 404) return this.onExit(m, container, -1);
        continue; // the engine is not quite back yet
      }
      if (state.Running) return this.watchExit(m, container, container.wait());
      return this.onExit(m, container, state.ExitCode);
    }
  }

  /** The container ended on its own (or was stopped): record why. */
  private async onExit(m: Managed, container: PluginContainer, code: number): Promise<void> {
    if (m.container !== container) return;
    m.exitCode = code;
    try {
      m.oomKilled = await container.oomKilled(code);
    } catch {
      // Already removed by a stop.
    }
    // Exits while starting are the start's own failure; exits while stopping are expected.
    if (m.state !== 'ready') return;
    if (code === EXIT_SIGSYS && !m.oomKilled) {
      const kill = await this.kernel?.take(m.loaded.manifest.id, m.startedAt ?? 0, 1_000);
      // The kill's record may have been read meanwhile and the plugin stopped for it.
      if (m.state === 'ready' && m.container === container) await this.failed(m, { code: 'LM_SECCOMP_VIOLATION', message: seccompKillMessage(m.loaded.manifest.id, kill) }, false, true);
      return;
    }
    const reason = m.oomKilled ? `exceeded its memory limit of ${m.loaded.manifest.resources.maxMemoryMB} MB and was killed` : `exited with code ${code}`;
    await this.failed(m, { code: m.oomKilled ? 'LM_RESOURCE_MEMORY' : 'LM_PLUGIN_EXITED', message: `plugin ${m.loaded.manifest.id} ${reason}` }, code === 0 && !m.oomKilled);
  }

  /** Ping the plugin over the hub every health.intervalMs while it is ready. */
  private startHealth(m: Managed): void {
    const { intervalMs, timeoutMs } = m.loaded.manifest.health;
    const id = m.loaded.manifest.id;
    let checking = false;
    let disconnectedChecks = 0;
    m.healthTimer = setInterval(() => {
      if (checking || m.state !== 'ready') return;
      // A dropped connection usually means the process died: the engine reports the exit
      // (with its code) a moment later, so that is left to tell. Still disconnected at the
      // next check, with the process alive, is unhealthy.
      if (!this.hub.stats(id)?.connected && disconnectedChecks++ === 0) return;
      checking = true;
      void this.hub
        .ping(id, timeoutMs)
        .then(async (ok) => {
          if (ok) disconnectedChecks = 0;
          if (ok || m.state !== 'ready') return;
          await this.failed(m, { code: 'LM_UNHEALTHY', message: `plugin ${id} did not answer its health check within ${timeoutMs} ms` }, false);
        })
        .finally(() => (checking = false));
    }, intervalMs);
    m.healthTimer.unref();
  }

  private stopTimers(m: Managed): void {
    clearInterval(m.healthTimer);
    clearTimeout(m.restartTimer);
    delete m.healthTimer;
    delete m.restartTimer;
    delete m.restartAt;
  }

  /**
   * A ready plugin crashed or stopped answering: remove its container at once (calls to it
   * now fail fast with LM_PLUGIN_UNAVAILABLE), then restart it after an exponential backoff
   * if its restart policy says so, up to restart.maxRetries consecutive failures.
   */
  private async failed(m: Managed, error: { code: string; message: string }, cleanExit: boolean, quarantine = false): Promise<void> {
    const { id, restart } = m.loaded.manifest;
    this.stopTimers(m);
    if (m.readySince !== undefined && Date.now() - m.readySince > Math.max(restart.maxBackoffMs, 10_000)) m.retries = 0;
    delete m.readySince;
    m.lastError = error;
    // Not ready from this moment: no second failure report, no new calls routed to it.
    m.state = 'restarting';
    this.audit.record({ who: id, action: 'violation', resource: id, result: 'failed', code: error.code, reason: error.message });
    this.log.warn({ plugin: id, code: error.code, retries: m.retries }, error.message);
    await this.teardown(m);
    // A forbidden system call is an attack, not a crash: restarting would let it try again.
    if (quarantine) {
      m.state = 'failed';
      this.persist();
      return;
    }
    const wanted = restart.policy === 'always' || (restart.policy === 'on-failure' && !cleanExit);
    if (!wanted || this.closing) {
      m.state = 'exited';
      return;
    }
    if (m.retries >= restart.maxRetries) {
      const tail = m.logs.tail(10).map((l) => l.text);
      m.state = 'failed';
      m.lastError = {
        code: 'LM_RESTART_LIMIT',
        message: `plugin ${id} failed ${m.retries + 1} times in a row (restart.maxRetries ${restart.maxRetries}); last: ${error.code}: ${error.message}${tail.length ? `; last output:\n${tail.join('\n')}` : ''}`,
      };
      this.log.error({ plugin: id }, m.lastError.message);
      return;
    }
    const delayMs = Math.min(restart.backoffMs * 2 ** m.retries, restart.maxBackoffMs);
    m.retries++;
    m.restarts++;
    m.state = 'restarting';
    m.restartAt = Date.now() + delayMs;
    this.persist();
    const attempt = () => {
      if (m.state !== 'restarting') return;
      // No engine, no start: wait for it without spending a retry.
      if (!this.engine.up) {
        m.restartTimer = setTimeout(attempt, 1_000);
        return;
      }
      this.serialize(m, () => this.doStart(m)).catch((err: unknown) => {
        const e = err instanceof LogoMeshError ? { code: err.code, message: err.message } : { code: 'LM_ENGINE_ERROR', message: String(err) };
        // A plugin refused by its signature, or whose host paths changed, stays refused:
        // retrying cannot change its files back, and each attempt would only be refused again.
        if (e.code === 'LM_SIGNATURE' || e.code === 'LM_PATH_CHANGED') return;
        void this.failed(m, e, false);
      });
    };
    m.restartTimer = setTimeout(attempt, delayMs);
  }

  private async doStop(m: Managed): Promise<void> {
    this.stopTimers(m);
    // A stop by hand ends a crash loop: the next start begins with a clean slate.
    m.retries = 0;
    delete m.lastError;
    if (!m.container) {
      if (m.state !== 'loaded') m.state = 'stopped';
      return;
    }
    const { id } = m.loaded.manifest;
    const wasRunning = m.state === 'ready' || m.state === 'starting';
    m.state = 'stopping';
    const container = m.container;
    if (wasRunning && this.hub.requestShutdown(id, this.stopGraceMs)) {
      const exited = await Promise.race([container.wait().then(() => true, () => true), delay(this.stopGraceMs).then(() => false)]);
      if (!exited) this.log.warn({ plugin: id }, `plugin did not exit within ${this.stopGraceMs} ms of the shutdown message; sending SIGTERM`);
    }
    await container.stop(Math.ceil(this.stopGraceMs / 1000));
    await this.teardown(m);
    m.state = 'stopped';
    this.audit.record({ who: 'controller', action: 'stop', resource: id, result: 'stopped' });
  }

  /**
   * Remove the container and the hub socket; safe after any failure. Never throws: with the
   * engine gone, the container is removed by the next reconcile or `logomesh clean`.
   */
  private async teardown(m: Managed): Promise<void> {
    const container = m.container;
    try {
      await container?.remove();
    } catch (err) {
      this.log.warn({ plugin: m.loaded.manifest.id, err: errorText(err) }, 'could not remove the plugin container now');
    }
    if (this.egress && isNetworked(m.loaded.manifest)) {
      try {
        await (await this.egress).detach(m.loaded.manifest.id);
      } catch (err) {
        this.log.warn({ plugin: m.loaded.manifest.id, err: errorText(err) }, 'could not remove the plugin network now');
      }
    }
    await this.hub.detachPlugin(m.loaded.manifest.id);
    rmSync(pluginSocketDir(this.opts.home, m.loaded.manifest.id), { recursive: true, force: true });
  }
}

/** The plugin folders of a directory: itself if it has a manifest, else its subfolders that do. */
export function pluginFolders(dir: string): string[] {
  const abs = path.resolve(dir);
  try {
    findManifest(abs);
    if (statSync(abs).isDirectory()) return [abs];
  } catch {
    // Not a plugin folder itself: look one level down.
  }
  let entries: string[];
  try {
    entries = readdirSync(abs).sort();
  } catch {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: no such folder`, { file: abs, expected: 'a folder of plugin folders', found: 'nothing' });
  }
  const folders = entries
    .map((e) => path.join(abs, e))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && (findManifest(p), true);
      } catch {
        return false;
      }
    });
  if (folders.length === 0) {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: no plugin folders (folders with plugin.yaml or plugin.json) found`, {
      file: abs,
      expected: 'at least one plugin folder',
      found: 'none',
    });
  }
  return folders;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
