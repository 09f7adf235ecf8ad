import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  auditEntries,
  connectEngine,
  Controller,
  loadPolicy,
  LogoMeshError,
  removeStagingLeftovers,
  resolveHome,
  silentLogger,
  topicMatches,
  type AuditEntry,
  type AuditQuery,
  type HostMethod,
  type Logger,
  type LogLine,
  type PluginStatus,
} from '../index.js';
import { startReaper, type Reaper } from './reaper.js';
import { usageOf, type ContainerUsage } from './usage.js';

/** An event or broadcast a test environment heard. */
export interface HeardEvent {
  readonly topic: string;
  readonly from: string;
  readonly data: unknown;
}

/** A call a plugin made to a host method stub. */
export interface HostCall {
  readonly from: string;
  readonly data: unknown;
}

/**
 * A set of plugins under a real LogoMesh controller, for a plugin author's tests (docs/testing-plugins.md):
 *
 *   await using mesh = await new LogoMeshEnvironment('plugins').withHostMethod('get_user', () => ({ name: 'Ada' })).start();
 *   expect(await mesh.call('greeter', 'hello', { id: 1 })).toEqual({ greeting: 'Hello, Ada!' });
 *
 * Each plugin runs in its hardened container as under `logomesh up`. Everything the
 * environment starts carries its own instance label, and a reaper container (started with
 * testcontainers) removes all of it if the test process dies before `stop`.
 */
export class LogoMeshEnvironment {
  private readonly stubs = new Map<string, HostMethod>();
  private policyFile?: string;
  private networks: string[] = [];
  private startTimeoutMs = 60_000;
  private log: Logger = silentLogger;

  /** `dir`: a plugin folder, or a folder of plugin folders. */
  constructor(private readonly dir: string) {}

  /** Serve a host method the plugins may call (their manifests list it under consumesMethods); calls are recorded. */
  withHostMethod(name: string, handler: HostMethod): this {
    this.stubs.set(name, handler);
    return this;
  }

  /** The operator policy the plugins are checked against (default: none). */
  withPolicy(file: string): this {
    this.policyFile = path.resolve(file);
    return this;
  }

  /** Existing docker networks (a testcontainers Network's name) whose services the plugins' egress proxies reach by name. */
  withNetworks(...names: string[]): this {
    this.networks.push(...names);
    return this;
  }

  /** How long each plugin has to say hello (default 60 s: a first start may build images). */
  withStartTimeout(ms: number): this {
    this.startTimeoutMs = ms;
    return this;
  }

  withLogger(log: Logger): this {
    this.log = log;
    return this;
  }

  /** Start the reaper, then a controller with every plugin, in dependency order; resolves when all are ready. */
  async start(): Promise<StartedLogoMeshEnvironment> {
    const docker = await connectEngine();
    // What a test process killed between a plugin's checks and its container's start left
    // mounted on the host (mount-staging.ts) is removed by the next start, here as in `up`.
    await removeStagingLeftovers(this.log);
    const base = process.env.LOGOMESH_INSTANCE?.slice(0, 40) || 'lmkit';
    const instance = `${base}-kit-${Math.random().toString(16).slice(2, 10)}`;
    const homeDir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-kit-'));
    let reaper: Reaper | undefined;
    let controller: Controller | undefined;
    try {
      reaper = await startReaper(docker, instance, [homeDir]);
      controller = await Controller.create({
        log: this.log,
        home: resolveHome({ LOGOMESH_HOME: homeDir, LOGOMESH_INSTANCE: instance }),
        docker,
        startTimeoutMs: this.startTimeoutMs,
        ...(this.policyFile ? { policy: loadPolicy(this.policyFile) } : {}),
        ...(this.networks.length ? { egressNetworks: this.networks } : {}),
      });
      const started = new StartedLogoMeshEnvironment(controller, reaper, docker, homeDir);
      for (const [name, handler] of this.stubs) started.serve(name, handler);
      controller.loadDirectory(this.dir);
      await controller.startAll();
      return started;
    } catch (err) {
      await controller?.close().catch(() => undefined);
      await reaper?.stop();
      rmSync(homeDir, { recursive: true, force: true });
      throw err;
    }
  }
}

/** A running test environment: call its plugins, hear their events, read their usage and the audit trail. */
export class StartedLogoMeshEnvironment implements AsyncDisposable {
  private readonly heard: HeardEvent[] = [];
  private readonly waiters = new Set<(e: HeardEvent) => void>();
  private readonly calls = new Map<string, HostCall[]>();
  private stopping?: Promise<void>;

  constructor(
    /** The controller itself, for what this class does not wrap (revoke, grant, restart...). */
    readonly controller: Controller,
    private readonly reaper: Reaper,
    private readonly docker: Awaited<ReturnType<typeof connectEngine>>,
    private readonly homeDir: string,
  ) {
    controller.on('*', (data, meta) => {
      const e = { topic: meta.topic, from: meta.from, data };
      this.heard.push(e);
      for (const w of this.waiters) w(e);
    });
  }

  /** The instance label on everything this environment started. */
  get instance(): string {
    return this.controller.home.instance;
  }

  /** Call a plugin method as the host application; rejects with the coded error (`err.code`, LM_*). */
  call(plugin: string, method: string, data: unknown = {}, timeoutMs?: number): Promise<unknown> {
    return this.controller.call(plugin, method, data, timeoutMs);
  }

  /** Emit an event as the host, to its subscribers (or only to the plugins in `to`). */
  emit(topic: string, data: unknown, to?: string[]): void {
    this.controller.emit(topic, data, to);
  }

  /** Events and broadcasts heard so far, of topics matching `topic` (a pattern: `news.*`; default all). */
  events(topic = '*'): HeardEvent[] {
    return this.heard.filter((e) => topicMatches(topic, e.topic));
  }

  /**
   * The first event of `topic` (a pattern) that `where` accepts, heard since the environment
   * started (so one that came before this call counts). Rejects with LM_TIMEOUT after `timeoutMs`.
   */
  waitForEvent(topic: string, opts: { where?: (e: HeardEvent) => boolean; timeoutMs?: number } = {}): Promise<HeardEvent> {
    const ok = (e: HeardEvent) => topicMatches(topic, e.topic) && (opts.where?.(e) ?? true);
    const seen = this.heard.find(ok);
    if (seen) return Promise.resolve(seen);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const onEvent = (e: HeardEvent) => {
        if (!ok(e)) return;
        cleanup();
        resolve(e);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new LogoMeshError('LM_TIMEOUT', `no event of '${topic}' within ${timeoutMs} ms (heard: ${[...new Set(this.heard.map((e) => e.topic))].join(', ') || 'none'})`, { topic }));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(onEvent);
      };
      this.waiters.add(onEvent);
    });
  }

  /** Serve (or replace) a host method stub; its calls are recorded for hostCalls. */
  serve(name: string, handler: HostMethod): void {
    this.calls.set(name, this.calls.get(name) ?? []);
    this.controller.registerMethod(name, (data, ctx) => {
      this.calls.get(name)!.push({ from: ctx.from, data });
      return handler(data, ctx);
    });
  }

  /** The calls plugins made to a host method stub, in order. */
  hostCalls(name: string): HostCall[] {
    return [...(this.calls.get(name) ?? [])];
  }

  status(plugin: string): PluginStatus {
    return this.controller.status(plugin);
  }

  list(): PluginStatus[] {
    return this.controller.list();
  }

  /** A plugin's last output lines (default 100). */
  logs(plugin: string, lines = 100): string[] {
    return this.controller.logs(plugin, lines).map((l: LogLine) => l.text);
  }

  /** What a plugin's container uses now, as the engine counts it (memory, CPU, processes). */
  usage(plugin: string): Promise<ContainerUsage> {
    const id = this.controller.status(plugin).containerId;
    if (!id) return Promise.reject(new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `plugin ${plugin} has no container now (state ${this.controller.status(plugin).state})`, { plugin }));
    return usageOf(this.docker, id, plugin);
  }

  /** The audit trail so far (every entry written first), filtered by plugin or time. */
  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    this.controller.hub.flushAudit();
    await this.controller.audit.flushed();
    return [...auditEntries(this.controller.home.auditFile, query)];
  }

  /** Stop every plugin, remove everything, stop the reaper. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.controller.close();
      } finally {
        await this.reaper.stop();
        rmSync(this.homeDir, { recursive: true, force: true });
      }
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
