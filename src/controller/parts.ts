import { randomBytes } from 'node:crypto';
import { AuditLog } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import { Grants } from '../grants/grants.js';
import { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { Policy } from '../policy/policy.js';
import { pluginGid, pluginUid } from '../runtimes/runtime.js';
import type { SignedContent } from '../signing/signature.js';
import type { KernelWatch } from '../violations/kernel-watch.js';
import { dockerParts, type Backend, type Lifecycle, type Reconciler } from './backend.js';
import type { ControllerContext } from './context.js';
import { DebugMode } from './debug/debug-mode.js';
import { Deployer } from './deploy/deployer.js';
import { DockerBackend } from './docker-backend.js';
import { EngineWatch } from './engine-watch.js';
import { exitCause } from './exit-cause.js';
import { watchKernel } from './kernel-events.js';
import { Launcher } from './launcher.js';
import { egressKey } from './managed.js';
import { Monitoring } from './monitoring.js';
import { DEFAULTS, type ControllerOptions } from './options.js';
import { PluginRegistry } from './registry.js';
import { SavedState } from './saved-state.js';
import { Segments } from './segments.js';
import { Standbys } from './standby.js';
import { Supervisor } from './supervisor.js';

/** What the parts need back from the controller that holds them. */
export interface ControllerHooks {
  /** The policy in force. */
  policy(): Policy;
  /** Is the controller closing (nothing starts or restarts any more)? */
  closing(): boolean;
  /** Save state.json now. */
  persist(): void;
  /** A path grant's time ran out: take it away (the container is recreated without it). */
  pathExpired(pluginId: string, name: string): void;
  /** For deploys: the policy a new folder is checked against, and the one it brings into force. */
  currentPolicy(): Policy;
  usePolicy(policy: Policy): void;
  load(manifests: readonly LoadedManifest[], verified?: ReadonlyMap<LoadedManifest, SignedContent | undefined>): string[];
  start(id: string): Promise<void>;
  unload(id: string): Promise<void>;
}

/** The controller's parts, each the one owner of its kind of state (docs/architecture.md). */
export interface ControllerParts {
  readonly log: Logger;
  readonly token: string;
  readonly audit: AuditLog;
  readonly saved: SavedState;
  readonly registry: PluginRegistry;
  readonly grants: Grants;
  readonly memory: Segments;
  readonly monitoring: Monitoring;
  readonly hub: Hub;
  readonly engine: EngineWatch;
  readonly kernel: KernelWatch | undefined;
  readonly debugMode: DebugMode | undefined;
  readonly standbys: Standbys | undefined;
  readonly supervisor: Supervisor;
  readonly launcher: Lifecycle;
  readonly adoption: Reconciler;
  readonly deployer: Deployer | undefined;
}

/**
 * Build the controller's parts and wire them to one another. Parts reach each other through
 * the ControllerContext or through callbacks that run only after every part exists.
 */
export function buildParts(backend: Backend, opts: ControllerOptions, hooks: ControllerHooks): ControllerParts {
  const { home } = opts;
  const log = opts.log.child({ component: 'controller' });
  const token = opts.hubToken ?? randomBytes(24).toString('base64url');
  const saved = new SavedState(home.stateFile, log);
  const audit = new AuditLog(home.auditFile, { ...opts.auditRotation, onError: (err) => log.error({ err: err.message, file: home.auditFile }, 'the audit trail cannot be written') });
  const idsOf = (id: string): [number, number] => [pluginUid(home.instance, id), pluginGid(home.instance, id)];
  const registry = new PluginRegistry({ audit: audit.record, verifyPolicy: opts.policy, policy: hooks.policy, idsOf, instance: home.instance });
  const debugMode = debugModeOf(backend, opts, log, registry);
  const grants = new Grants({
    log,
    // The hub's aggregated counts of earlier decisions are written first, so the trail keeps their order.
    audit: (e) => {
      hub.flushAudit();
      audit.record(e);
    },
    plugin: (id) => registry.get(id).loaded,
    plugins: () => registry.records().map((m) => m.loaded),
    homeDir: home.dir,
    policy: hooks.policy,
    idsOf,
    onChange: hooks.persist,
    onPathExpired: hooks.pathExpired,
  });
  const memory = new Segments({ home, log, audit: (e) => audit.record(e), registry, idsOf, ...(opts.sharedMemory ?? {}) });
  const monitoring = monitoringOf(backend, opts, log, audit, registry, hooks, (topic, data) => hub.announce(topic, data));
  const hub = new Hub({
    ...opts.hubLimits,
    metrics: monitoring.metrics.hubMetrics,
    segments: memory,
    isMethodRevoked: grants.isMethodRevoked,
    isTopicRevoked: grants.isTopicRevoked,
    log: opts.log,
    audit: audit.record,
    token,
    ...(opts.maxMessageBytes ? { maxMessageBytes: opts.maxMessageBytes } : {}),
    // A plugin stopped at a breakpoint answers no ping: in debug mode, the hub's come an hour apart.
    ...(opts.pingIntervalMs ? { pingIntervalMs: opts.pingIntervalMs } : opts.debug ? { pingIntervalMs: 3_600_000 } : {}),
    ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.hostMethods ? { hostMethods: opts.hostMethods } : {}),
    exitCause: (id) => exitCause(registry.find(id), 2_000),
  });
  // Each plugin starting waits on 'ready' (readiness.ts): as many listeners as starts at once.
  hub.setMaxListeners(0);
  const engine = new EngineWatch(backend, log, opts.engineCheckMs ?? DEFAULTS.engineCheckMs, () => backend.answersAgain());
  // The kernel log is this host's: it tells of plugins only when they run here.
  const onKill = (id: string, kill: Parameters<Supervisor['seccompKilled']>[1]): void => {
    const m = registry.find(id);
    if (m) void supervisor.seccompKilled(m, kill);
  };
  const kernel = opts.kernelLog !== false && backend.name === 'docker' ? watchKernel({ log, audit: audit.record, instance: home.instance, pluginIds: () => registry.ids(), onKill }) : undefined;
  const cx: ControllerContext = {
    debug: debugMode,
    // The Docker backend's own parts, for its launcher and adoption (LM_INTERNAL on another backend).
    get docker() {
      return dockerParts(backend).docker;
    },
    get egress() {
      return dockerParts(backend).egress;
    },
    log, opts, home, hub, audit, grants, registry, segments: memory, engine, kernel, monitoring, idsOf,
    policy: hooks.policy,
    closing: hooks.closing,
    // The lifecycle's saves (readies, restarts, adoptions) come in bursts: written together.
    persist: () => {
      if (!hooks.closing()) saved.saveSoon(() => registry.records(), (id) => grants.saved(id));
    },
  };
  // A warm standby is a second container of the plugin on this host: the Docker backend's.
  const standbys = backend.name === 'docker' ? new Standbys(cx, new Set(opts.standby ?? []), (m, container, exited) => supervisor.watchExit(m, container, exited)) : undefined;
  const supervisor: Supervisor = new Supervisor(cx, { start: (m) => launcher.start(m), teardown: (m) => launcher.teardown(m) }, standbys);
  const { lifecycle: launcher, reconciler: adoption } = backend.parts(cx, supervisor);
  // Deploys need a launcher that can start a plugin's replacement beside it: the Docker backend's.
  const deployer = launcher instanceof Launcher ? new Deployer(cx, launcher, supervisor, hooks) : undefined;
  return { log, token, audit, saved, registry, grants, memory, monitoring, hub, engine, kernel, debugMode, standbys, supervisor, launcher, adoption, deployer };
}

function monitoringOf(backend: Backend, opts: ControllerOptions, log: Logger, audit: AuditLog, registry: PluginRegistry, hooks: ControllerHooks, emit: (topic: string, data: unknown) => void): Monitoring {
  // The resource monitor reads this host's cgroups: it watches plugins on the Docker backend only.
  const onDocker = backend.name === 'docker';
  return new Monitoring({
    get docker() {
      return dockerParts(backend).docker;
    },
    log,
    audit: audit.record,
    emit,
    policy: hooks.policy,
    records: () => registry.records(),
    // A plugin's proxy is keyed by its generation (a replacement has its own, managed.ts).
    connections: (id) => {
      const m = onDocker ? registry.find(id) : undefined;
      return m ? dockerParts(backend).egress.connections(egressKey(m)) : undefined;
    },
    options: onDocker ? (opts.monitoring ?? {}) : { enabled: false, healthCheckMs: false },
    startTimeoutMs: opts.startTimeoutMs ?? DEFAULTS.startTimeoutMs,
  });
}

/** Debug mode is for a development machine's Docker engine (logomesh dev). */
function debugModeOf(backend: Backend, opts: ControllerOptions, log: Logger, registry: PluginRegistry): DebugMode | undefined {
  if (!opts.debug) return undefined;
  if (!(backend instanceof DockerBackend)) throw new LogoMeshError('LM_USAGE', `debug mode runs plugins on the Docker backend only, not on ${backend.name}`, { field: 'debug', expected: 'the Docker backend', found: backend.name });
  return new DebugMode(backend.docker, log, (id) => registry.find(id)?.container?.id);
}

