import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { SeccompKill } from '../violations/audit-records.js';
import { EXIT_SIGSYS, KERNEL_RECORD_WAIT_MS, seccompKillMessage } from '../violations/kernel-watch.js';
import type { Workload } from './backend.js';
import type { ControllerContext } from './context.js';
import { ANSWER_PROVES_MS, HealthPings } from './health-pings.js';
import { forgetHealthReport, reportHealth } from './health-report.js';
import { delay, type Supervision } from './launcher.js';
import { serialize, type Managed } from './managed.js';
import { consecutiveFailures, decideRestart } from './restart-policy.js';
import type { Standbys } from './standby.js';

/** The report of a plugin that answers, one line for both proofs so that a report switching between them is only touched (health-report.ts). */
const ANSWERED = 'ok: answered the hub (a health ping or a call)';

/** 128 + SIGKILL: how a process the OOM killer ended exits. */
const EXIT_SIGKILL = 137;
/**
 * How long an exit by SIGKILL waits for the kernel's OOM notification that has not come yet
 * (the monitor's detection p99 is about 5 ms, and it fires before the process is gone).
 */
const OOM_NOTICE_WAIT_MS = 100;

/** What the supervisor needs of the launcher. */
export interface Relaunch {
  start(m: Managed): Promise<void>;
  teardown(m: Managed): Promise<void>;
}

/**
 * Watches each started plugin: its container's exit (an engine that dropped the wait is
 * not an exit), its health pings over the hub, a seccomp kill, its egress proxy going away.
 * A ready plugin that fails is torn down at once and restarted as restart-policy.ts
 * decides, after its backoff, and never while the engine does not answer.
 */
export class Supervisor implements Supervision {
  /** Every ready plugin's health pings, on one timer (health-pings.ts). */
  private readonly pings = new HealthPings<Managed>();

  constructor(
    private readonly cx: ControllerContext,
    private readonly launcher: Relaunch,
    /** Warm standbys (standby.ts; the Docker backend's): a first failure switches to one at once. */
    readonly standbys?: Standbys,
  ) {}

  /**
   * React to the container's end, whatever ends it. A wait that fails (the engine went
   * away) counts as an exit only once the engine, back, says the container is gone.
   */
  watchExit(m: Managed, container: Workload, exited: Promise<number>): void {
    exited
      .then(
        (code) => this.onExit(m, container, code),
        () => this.waitLost(m, container),
      )
      .catch((err: unknown) => this.cx.log.error({ plugin: m.loaded.manifest.id, err: errorText(err) }, 'handling a plugin exit failed'));
  }

  /**
   * Ping the plugin over the hub every health.intervalMs (at most a quarter second late:
   * health-pings.ts) while it is ready, and have the
   * resource monitor watch it: resolves once it does (or cannot), so that its usage can be
   * asked for as soon as a start resolves. A plugin that keeps a standby gets one prepared.
   */
  async startHealth(m: Managed): Promise<void> {
    this.standbys?.prepare(m);
    const { hub, home } = this.cx;
    const { intervalMs, timeoutMs } = m.loaded.manifest.health;
    const id = m.loaded.manifest.id;
    let checking = false;
    let disconnectedChecks = 0;
    // Ready: healthy in the engine's eyes too (its Docker health check reads this), in a folder that may be new.
    forgetHealthReport(home, id, m.generation);
    reportHealth(home, id, 'ok: ready, connected to the hub', m.generation);
    // In debug mode a plugin stopped at a breakpoint answers nothing, and is not unhealthy.
    if (this.cx.debug) return this.cx.monitoring.watch(m);
    this.pings.add(m, intervalMs, () => {
      if (checking || m.state !== 'ready') return;
      // A dropped connection usually means the process died: the engine reports the exit
      // (with its code) a moment later, so that is left to tell. Still disconnected at the
      // next check, with the process alive, is unhealthy.
      if (!hub.stats(id)?.connected && disconnectedChecks++ === 0) return reportHealth(home, id, 'unhealthy: disconnected from the hub', m.generation);
      // It answered a call just now: as good as a pong (health-pings.ts ANSWER_PROVES_MS).
      if (hub.answeredWithin(id, ANSWER_PROVES_MS)) {
        disconnectedChecks = 0;
        return reportHealth(home, id, ANSWERED, m.generation);
      }
      checking = true;
      void hub
        .ping(id, timeoutMs)
        .then(async (ok) => {
          if (ok) disconnectedChecks = 0;
          reportHealth(home, id, ok ? ANSWERED : `unhealthy: no answer to the hub's health ping within ${timeoutMs} ms`, m.generation);
          if (ok || m.state !== 'ready') return;
          await this.failed(m, { code: 'LM_UNHEALTHY', message: `plugin ${id} did not answer its health check within ${timeoutMs} ms` }, false);
        })
        .finally(() => (checking = false));
    });
    // A standby switched in may still be lowering its start-up boost: the monitor reads the declared quota.
    await m.boost?.ended;
    await this.cx.monitoring.watch(m);
  }

  stopTimers(m: Managed): void {
    this.pings.remove(m);
    clearTimeout(m.restartTimer);
    delete m.restartTimer;
    delete m.restartAt;
  }

  /** A process of a running plugin was killed by seccomp: the plugin is stopped, not restarted. */
  async seccompKilled(m: Managed, kill: SeccompKill): Promise<void> {
    if (m.state !== 'ready') return;
    await this.failed(m, { code: 'LM_SECCOMP_VIOLATION', message: seccompKillMessage(m.loaded.manifest.id, kill) }, false, true);
  }

  /** A running plugin's egress proxy exited under it: restarted by its policy, with a new proxy. */
  async proxyGone(m: Managed): Promise<void> {
    if (m.state !== 'ready') return;
    await this.failed(m, { code: 'LM_EGRESS', message: `the egress proxy of plugin ${m.loaded.manifest.id} exited: the plugin had no way out any more` }, false);
  }

  /**
   * The engine dropped the wait (it restarted, or went away). That is not the plugin
   * exiting: once the engine answers again, look at the container; with the daemon's
   * live-restore it is still running and is simply watched again.
   */
  private async waitLost(m: Managed, container: Workload): Promise<void> {
    while (!this.cx.closing() && m.container === container) {
      await delay(500);
      if (!this.cx.engine.up) continue;
      let found;
      try {
        found = await container.probe();
      } catch {
        continue; // the engine is not quite back yet
      }
      if (found.state === 'gone') return this.onExit(m, container, -1);
      if (found.state === 'running') return this.watchExit(m, container, container.wait());
      return this.onExit(m, container, found.exitCode);
    }
  }

  /** The container ended on its own (or was stopped): record why. */
  private async onExit(m: Managed, container: Workload, code: number): Promise<void> {
    if (m.container !== container) return;
    m.exitCode = code;
    // The kernel's own record, through the resource monitor, where the engine's flag lags:
    // with it, the engine is looked at once, not for half a second (a standby waits on this).
    const kernel = await this.cx.monitoring.oomKillAtExit(m.loaded.manifest.id, container.id, code === EXIT_SIGKILL ? OOM_NOTICE_WAIT_MS : 0);
    try {
      m.oomKilled = await container.oomKilled(code, kernel === undefined);
    } catch {
      // Already removed by a stop.
    }
    if (kernel === true && code === EXIT_SIGKILL) m.oomKilled = true;
    // Exits while starting are the start's own failure; exits while stopping are expected.
    if (m.state !== 'ready') return;
    const id = m.loaded.manifest.id;
    if (code === EXIT_SIGSYS && !m.oomKilled) {
      const kill = await this.cx.kernel?.take(id, m.startedAt ?? 0, KERNEL_RECORD_WAIT_MS);
      // The kill's record may have been read meanwhile and the plugin stopped for it.
      if (m.state === 'ready' && m.container === container) await this.failed(m, { code: 'LM_SECCOMP_VIOLATION', message: seccompKillMessage(id, kill) }, false, true);
      return;
    }
    const killed = this.cx.monitoring.takeKill(id, container.id);
    if (killed) return this.failed(m, { code: 'LM_RESOURCE_EXCEEDED', message: `plugin ${id} was killed by the resource monitor: ${killed.detail}` }, false);
    const memoryMB = m.liveLimits?.memoryMB ?? m.loaded.manifest.resources.maxMemoryMB;
    const reason = m.oomKilled ? `exceeded its memory limit of ${memoryMB} MB and was killed` : `exited with code ${code}`;
    await this.failed(m, { code: m.oomKilled ? 'LM_RESOURCE_MEMORY' : 'LM_PLUGIN_EXITED', message: `plugin ${id} ${reason}` }, code === 0 && !m.oomKilled);
  }

  /**
   * A ready plugin crashed or stopped answering: remove its container at once (calls to it
   * now fail fast with LM_PLUGIN_UNAVAILABLE), then restart it after an exponential backoff
   * if its restart policy says so, up to restart.maxRetries consecutive failures. A plugin
   * quarantined (a forbidden system call: an attack, not a crash) stays failed.
   */
  private async failed(m: Managed, error: { code: string; message: string }, cleanExit: boolean, quarantine = false): Promise<void> {
    const { cx } = this;
    const { id, restart } = m.loaded.manifest;
    this.stopTimers(m);
    m.retries = consecutiveFailures(restart, { retries: m.retries, ...(m.readySince !== undefined ? { readySince: m.readySince } : {}) }, Date.now());
    delete m.readySince;
    m.lastError = error;
    // Not ready from this moment: no second failure report, no new calls routed to it.
    m.state = 'restarting';
    cx.audit.record({ who: id, action: 'violation', resource: id, result: 'failed', code: error.code, reason: error.message });
    cx.log.warn({ plugin: id, code: error.code, retries: m.retries }, error.message);
    const decision = decideRestart(restart, m.retries, { cleanExit, quarantine, closing: cx.closing() });
    // A standby takes over at once after a first failure. A plugin failing again in a row
    // waits its backoff with a new container, as without one: a standby is no crash loop.
    if (decision.action === 'restart' && m.retries === 0 && this.switchIn(m, `${error.code} after a failure`)) {
      m.retries = decision.retries;
      m.restarts++;
      cx.persist();
      return;
    }
    await this.launcher.teardown(m);
    switch (decision.action) {
      case 'quarantine':
        m.state = 'failed';
        cx.persist();
        return;
      case 'exit':
        m.state = 'exited';
        return;
      case 'give-up': {
        const tail = m.logs.tail(10).map((l) => l.text);
        m.state = 'failed';
        m.lastError = {
          code: 'LM_RESTART_LIMIT',
          message: `plugin ${id} failed ${decision.failures} times in a row (restart.maxRetries ${restart.maxRetries}); last: ${error.code}: ${error.message}${tail.length ? `; last output:\n${tail.join('\n')}` : ''}`,
        };
        cx.log.error({ plugin: id }, m.lastError.message);
        return;
      }
      case 'restart':
        m.retries = decision.retries;
        m.restarts++;
        m.state = 'restarting';
        m.restartAt = Date.now() + decision.delayMs;
        cx.persist();
        m.restartTimer = setTimeout(() => this.attempt(m), decision.delayMs);
    }
  }

  /**
   * A restart by hand with a standby waiting: switch to it, then stop the container it
   * replaced behind (SIGTERM, then SIGKILL after the grace period). False when there is no
   * standby ready (restart as usual).
   */
  restartToStandby(m: Managed, graceMs: number): boolean {
    const old = m.container;
    this.stopTimers(m);
    if (!this.switchIn(m, 'a restart by hand', false)) {
      if (m.state === 'ready') void this.startHealth(m);
      return false;
    }
    m.retries = 0;
    delete m.lastError;
    void old
      ?.stop(Math.ceil(graceMs / 1000))
      .then(() => old.remove())
      .catch((err: unknown) => this.cx.log.warn({ plugin: m.loaded.manifest.id, err: errorText(err) }, 'could not remove the container the standby replaced'));
    return true;
  }

  /**
   * Switch to the plugin's standby now (standby.ts): ready again in the same turn of the
   * hub, audited as a start. The container it replaced is removed behind (`removeOld`).
   */
  private switchIn(m: Managed, why: string, removeOld = true): boolean {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    const old = m.container;
    const t0 = Date.now();
    const container = this.standbys?.take(m);
    if (!container) return false;
    m.container = container;
    m.state = 'ready';
    m.readySince = m.startedAt = Date.now();
    m.startMs = Date.now() - t0;
    delete m.exitCode;
    delete m.oomKilled;
    // The monitor watched the replaced container's processes: it watches the standby's now.
    cx.monitoring.unwatch(id);
    void this.startHealth(m);
    cx.persist();
    cx.audit.record({ who: 'controller', action: 'start', resource: id, result: 'ready', reason: `switched to its standby (${why})` });
    cx.log.info({ plugin: id, container: container.id.slice(0, 12), why }, 'switched to the standby');
    if (removeOld) void old?.remove().catch((err: unknown) => cx.log.warn({ plugin: id, err: errorText(err) }, 'could not remove the container the standby replaced'));
    return true;
  }

  /** One restart attempt, when its backoff is over. */
  private attempt(m: Managed): void {
    if (m.state !== 'restarting') return;
    // No engine, no start: wait for it without spending a retry.
    if (!this.cx.engine.up) {
      m.restartTimer = setTimeout(() => this.attempt(m), 1_000);
      return;
    }
    serialize(m, () => this.launcher.start(m)).catch((err: unknown) => {
      const e = err instanceof LogoMeshError ? { code: err.code, message: err.message } : { code: 'LM_ENGINE_ERROR', message: String(err) };
      // A plugin refused by its signature, or whose host paths changed, stays refused:
      // retrying cannot change its files back, and each attempt would only be refused again.
      if (e.code === 'LM_SIGNATURE' || e.code === 'LM_PATH_CHANGED') return;
      void this.failed(m, e, false);
    });
  }
}
