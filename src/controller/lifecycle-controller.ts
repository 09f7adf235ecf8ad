// The controller's lifecycle half: the parts built once, loading and unloading plugin folders,
// deploys, starting, stopping and restarting plugins, adoption, and closing. Controller
// (controller.ts) extends it with what the operator and the host application ask of it
// (permissions, calls, monitoring, status); one class at run time, in two files by concept.
import type { AuditLog } from '../audit/audit-log.js';
import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { Grants } from '../grants/grants.js';
import type { Hub } from '../hub/hub.js';
import type { LoadedManifest } from '../manifest/types.js';
import { loadFolders } from '../manifest/folders.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import type { SignedContent } from '../signing/signature.js';
import type { Backend } from './backend.js';
import type { ApplyOptions, Deployer } from './deploy/deployer.js';
import type { Home } from './home.js';
import { serialize } from './managed.js';
import { OperatorPermissions } from './operator-permissions.js';
import { DEFAULTS, type ControllerOptions } from './options.js';
import { buildParts, type ControllerParts } from './parts.js';
import type { Segments } from './segments.js';
import { closeParts, leaveParts } from './shutdown.js';
import { startInLevels } from './start-all.js';
import type { ApplyResult, EngineStatus } from './types.js';

/**
 * Loading, deploys, the lifecycle of every plugin and the controller's own end: the spec's
 * LifecycleController. Only `Controller` extends it; nothing makes one of these alone.
 */
export class LifecycleController implements AsyncDisposable {
  readonly hub: Hub;
  /** The bearer token host clients present on the hub's TCP endpoint. */
  readonly token: string;
  readonly audit: AuditLog;
  /** The operator's revocations and grants (methods, topics, hosts, host paths): their one owner. */
  readonly grants: Grants;
  /**
   * Shared memory (docs/shared-memory.md): the pool's segments as the host application sees
   * them (allocate, deallocate, resize, setReadOnly, setAccessibleTo, list), and the cache.
   */
  readonly memory: Segments;
  /** Every part, each the one owner of its kind of state (parts.ts). */
  protected readonly parts: ControllerParts;
  protected readonly permissions: OperatorPermissions;
  private resolvedPolicy?: Policy;
  protected closing?: Promise<void>;

  protected constructor(
    /** Where plugins run: this host's Docker engine, or a Kubernetes cluster. */
    readonly backend: Backend,
    protected readonly opts: ControllerOptions,
  ) {
    this.parts = buildParts(backend, opts, {
      policy: () => this.policy,
      closing: () => this.closing !== undefined,
      persist: () => this.persist(),
      pathExpired: (id, name) => {
        this.permissions.revokePath(id, name, 'expiry').catch((err: unknown) => this.parts.log.warn({ plugin: id, err: errorText(err) }, 'revoking an expired path grant failed'));
      },
      currentPolicy: () => (this.opts.policy ? this.policy : resolvePolicy(undefined)),
      usePolicy: (p) => (this.resolvedPolicy = p),
      load: (manifests, verified) => this.load(manifests, verified),
      start: (id) => this.start(id),
      unload: (id) => this.unload(id),
    });
    ({ hub: this.hub, token: this.token, audit: this.audit, grants: this.grants, memory: this.memory } = this.parts);
    const { log, audit, grants, registry, saved, launcher } = this.parts;
    this.permissions = new OperatorPermissions({ log, audit, grants, registry, saved, backend, launcher, stateFile: opts.home.stateFile, policy: () => this.policy, stop: (id) => this.stop(id), start: (id) => this.start(id) });
  }

  get home(): Home {
    return this.opts.home;
  }

  /** The policy in force: the one given, else the file LOGOMESH_POLICY names, else none. */
  get policy(): Policy {
    return this.opts.policy ?? (this.resolvedPolicy ??= resolvePolicy(undefined));
  }

  /** Is the Docker engine answering? Shown by `ps`; restarts wait while it is not. */
  engineStatus(): EngineStatus {
    return this.parts.engine.status();
  }

  // --- loading ------------------------------------------------------------------------------

  /**
   * Load every plugin folder under `dir` (each holds a manifest), or `dir` itself if it is
   * one. All manifests are validated before any is loaded; duplicate ids, missing
   * dependencies and cycles are refused. Returns the ids loaded.
   */
  loadDirectory(dir: string): string[] {
    return this.load(loadFolders(dir));
  }

  /**
   * Add validated manifests; the whole set is checked (signatures, policy, id clashes,
   * dependencies). Each plugin's operator permissions saved by an earlier controller of this
   * home apply before it can make its first call.
   */
  load(manifests: readonly LoadedManifest[], verified?: ReadonlyMap<LoadedManifest, SignedContent | undefined>): string[] {
    const ids = this.parts.registry.add(
      manifests,
      this.parts.saved.read(),
      (m) => {
        this.permissions.restore(m);
        if (this.parts.deployer) m.deployed = this.parts.deployer.fingerprint(m.loaded);
      },
      verified,
    );
    this.persist();
    return ids;
  }

  /** Stop and forget a plugin. Refused while a plugin that depends on it is loaded. */
  async unload(id: string): Promise<void> {
    this.parts.registry.get(id);
    const dependents = this.parts.registry.dependents(id);
    if (dependents.length) {
      throw new LogoMeshError('LM_DEPENDENCY', `cannot unload ${id}: loaded plugins depend on it (${dependents.join(', ')}); unload them first, or apply a folder without them`, {
        plugin: id,
        dependents,
      });
    }
    await this.stop(id);
    await this.memory.pluginGone(id, true);
    this.parts.registry.remove(id);
    await this.parts.debugMode?.close(id);
    await this.backend.unloaded(id);
    this.audit.record({ who: 'controller', action: 'unload', resource: id, result: 'allowed' });
    this.persist();
  }

  // --- deploys (deploy/) ----------------------------------------------------------------------

  /**
   * Make the running set what the plugin folders under `dir` say (docs/deploys.md): add the
   * new ones, replace the changed ones (manifest, any file, signature, policy) without
   * failing a call, and with `prune` remove the loaded ones the folder lacks, in dependency
   * order. The folder is checked whole first: a refusal (LM_MANIFEST_*, LM_SIGNATURE,
   * LM_POLICY_DENIED, LM_DEPENDENCY, ...) changes nothing. `dryRun` only plans.
   */
  apply(dir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
    return this.deploys().apply(dir, opts);
  }

  /** Load the plugin folders under `dir` into the running controller and start them. Returns their ids. */
  loadAndStart(dir: string): Promise<string[]> {
    return this.deploys().load(dir);
  }

  private deploys(): Deployer {
    if (!this.parts.deployer) throw new LogoMeshError('LM_USAGE', `apply and load into a running controller are built for the Docker backend only, not ${this.backend.name}: restart the controller with the new folder`, { expected: 'the Docker backend', found: this.backend.name });
    return this.parts.deployer;
  }

  /** The plugin folders an earlier controller of this home ran (state.json), in load order. */
  savedFolders(): string[] {
    return this.parts.saved.read()?.folders ?? [];
  }

  /** Load the plugin folders an earlier controller of this home ran. Throws LM_MANIFEST_NOT_FOUND when there are none. */
  loadSaved(): string[] {
    const folders = this.savedFolders();
    if (!folders.length) throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${this.opts.home.stateFile} names no plugin folders: give 'logomesh up' a folder`, { file: this.opts.home.stateFile, expected: 'plugin folders run by an earlier controller of this home', found: 'none' });
    return this.load(folders.flatMap((f) => loadFolders(f)));
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Start every loaded plugin, a dependency level at a time, each level in parallel. */
  async startAll(): Promise<void> {
    await this.reconcile();
    await startInLevels(
      this.parts.registry.levels(),
      (id) => this.start(id),
      () => this.parts.registry.records().filter((m) => m.state === 'loaded').map((m) => m.loaded.manifest.id),
      this.opts.startConcurrency ?? DEFAULTS.startConcurrency,
    );
  }

  /** Start one plugin (its dependencies must be ready). Resolves when it said hello. */
  async start(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    await this.reconcile();
    // A start by hand ends a crash loop: it begins with a clean count (its standby's too).
    if (m.state === 'failed' || m.state === 'exited') m.retries = 0;
    this.parts.standbys?.reset(id);
    return serialize(m, () => this.parts.launcher.start(m));
  }

  /** Stop one plugin: shutdown message, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    return serialize(m, () => this.parts.launcher.stop(m));
  }

  /**
   * Restart one plugin: switched to its standby when one is waiting (the container it
   * replaces is stopped behind), otherwise stopped and started again (the container is
   * recreated; see `apply` for a replacement without failed calls).
   */
  async restart(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    const switched = await serialize(m, async () => m.state === 'ready' && !!this.parts.standbys?.ready(m) && this.parts.supervisor.restartToStandby(m, this.opts.stopGraceMs ?? DEFAULTS.stopGraceMs));
    if (switched) return;
    await this.stop(id);
    await this.start(id);
  }

  /**
   * Adopt or remove the containers an earlier controller of this home left (it was killed,
   * or the machine restarted). Runs once, before the first start.
   */
  async reconcile(): Promise<void> {
    await this.parts.adoption.reconcile();
    await this.memory.adopt();
  }

  /** Stop every plugin in reverse dependency order, close the hub, remove sockets. Idempotent. */
  close(): Promise<void> {
    this.closing ??= closeParts(this.parts, this.backend, this.opts.home, (id) => this.stop(id));
    return this.closing;
  }

  /**
   * Stop serving without stopping the plugins: for a controller that is being moved (its
   * Pod rescheduled or drained; Kubernetes sends SIGTERM first). The plugins keep running and
   * their SDKs reconnect for 60 s; the next controller of the installation adopts them.
   * state.json, the audit trail and the hub keys stay for it. `close` after this does nothing.
   */
  leave(): Promise<void> {
    this.closing ??= leaveParts(this.parts, this.backend);
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ------------------------------------------------------------------------------

  /** Save what a restarted controller needs; called on every change of it. */
  protected persist(): void {
    if (this.closing) return;
    this.parts.saved.save(this.parts.registry.records(), (id) => this.grants.saved(id));
  }
}
