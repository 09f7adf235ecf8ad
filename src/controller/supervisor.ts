import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { SeccompKill } from '../violations/audit-records.js';
import type { Workload } from './backend.js';
import type { ControllerContext } from './context.js';
import { keepsSwitch } from './early-switch.js';
import { EarlySwitches } from './early-switches.js';
import { exitVerdict, oomAtExit, seccompVerdict } from './exit-verdict.js';
import { ANSWER_PROVES_MS, HealthPings } from './health-pings.js';
import { forgetHealthReport, reportHealth } from './health-report.js';
import { delay, type Supervision } from './launcher.js';
import { serialize, type Managed } from './managed.js';
import { consecutiveFailures, decideRestart, type RestartDecision } from './restart-policy.js';
import type { Standbys } from './standby.js';

/** The report of a plugin that answers, one line for both proofs so that a report switching between them is only touched (health-report.ts). */
const ANSWERED = 'ok: answered the hub (a health ping or a call)';

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
  /** Switches made when the kernel says the processes are gone, before the engine's report (early-switches.ts). */
  private readonly early: EarlySwitches;

  constructor(
    private readonly cx: ControllerContext,
    private readonly launcher: Relaunch,
    /** Warm standbys (standby.ts; the Docker backend's): a first failure switches to one at once. */
    readonly standbys?: Standbys,
  ) {
    this.early = new EarlySwitches(cx, standbys, {
      switchIn: (m, why, removeOld, early) => this.switchIn(m, why, removeOld, early),
      stopTimers: (m) => this.stopTimers(m),
      record: (m, error, retries) => this.record(m, error, retries),
      apply: (m, decision, error) => this.apply(m, decision, error),
    });
  }

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
    // With a standby to switch to, the kernel's word that the processes are gone is enough.
    this.early.arm(m);
    let checking = false;
    let disconnectedChecks = 0;
    // Ready: healthy in the engine's eyes too (its Docker health check reads this), in a folder that may be new.
    forgetHealthReport(home, id, m.generation);
    reportHealth(home, id, 'ok: ready, connected to the hub', m.generation);
    // In debug mode a plugin stopped at a breakpoint answers nothing, and is not unhealthy.
    if (this.cx.debug) return this.watchResources(m);
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
    await this.watchResources(m);
  }

  /** Have the resource monitor watch the plugin; after an early switch, once the container switched out has its verdict (it reads that one's OOM record). */
  private async watchResources(m: Managed): Promise<void> {
    await this.early.verdictIn(m);
    await this.cx.monitoring.watch(m);
  }

  stopTimers(m: Managed): void {
    this.early.exits.close(m.loaded.manifest.id);
    this.pings.remove(m);
    clearTimeout(m.restartTimer);
    delete m.restartTimer;
    delete m.restartAt;
  }

  /** A process of a running plugin was killed by seccomp: the plugin is stopped, not restarted. */
  async seccompKilled(m: Managed, kill: SeccompKill): Promise<void> {
    const v = seccompVerdict(m.loaded.manifest.id, kill);
    // Switched early at the end of its processes: this record is the verdict (the quarantine undoes the switch).
    const early = this.early.get(m);
    if (early) return this.early.settle(m, early, async () => v);
    if (m.state !== 'ready') return;
    await this.failed(m, v.error, v.cleanExit, v.quarantine);
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
    // A container switched out early is watched until its verdict, like the plugin's own.
    while (!this.cx.closing() && (m.container === container || this.early.get(m)?.from === container)) {
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
    const early = this.early.get(m);
    if (early?.from === container) return this.early.exited(m, early, code);
    if (m.container !== container) return;
    // The engine told it first: no switch from the kernel's word while this exit is classified.
    this.early.exits.close(m.loaded.manifest.id);
    m.exitCode = code;
    m.oomKilled = await oomAtExit(this.cx, m.loaded.manifest.id, container, code);
    // Exits while starting are the start's own failure; exits while stopping are expected.
    if (m.state !== 'ready') return;
    // The kill's record may have been read meanwhile and the plugin stopped for it.
    const v = await exitVerdict(this.cx, m, container, code, m.oomKilled, m.startedAt ?? 0, () => m.state === 'ready' && m.container === container);
    if (v) await this.failed(m, v.error, v.cleanExit, v.quarantine);
  }

  /**
   * A ready plugin crashed or stopped answering: remove its container at once (calls to it
   * now fail fast with LM_PLUGIN_UNAVAILABLE), then restart it after an exponential backoff
   * if its restart policy says so, up to restart.maxRetries consecutive failures. A plugin
   * quarantined (a forbidden system call: an attack, not a crash) stays failed.
   */
  private async failed(m: Managed, error: { code: string; message: string }, cleanExit: boolean, quarantine = false): Promise<void> {
    const { cx } = this;
    const { restart } = m.loaded.manifest;
    this.stopTimers(m);
    m.retries = consecutiveFailures(restart, { retries: m.retries, ...(m.readySince !== undefined ? { readySince: m.readySince } : {}) }, Date.now());
    delete m.readySince;
    // Not ready from this moment: no second failure report, no new calls routed to it.
    m.state = 'restarting';
    this.record(m, error);
    const decision = decideRestart(restart, m.retries, { cleanExit, quarantine, closing: cx.closing() });
    // A standby takes over at once after a first failure. A plugin failing again in a row
    // waits its backoff with a new container, as without one: a standby is no crash loop.
    if (keepsSwitch(decision, m.retries) && this.switchIn(m, `${error.code} after a failure`)) {
      m.retries = decision.retries;
      m.restarts++;
      cx.persist();
      return;
    }
    await this.apply(m, decision, error);
  }

  /** A failure's cause: the plugin's lastError, audited and logged with its code. */
  private record(m: Managed, error: { code: string; message: string }, retries = m.retries): void {
    const id = m.loaded.manifest.id;
    m.lastError = error;
    this.cx.audit.record({ who: id, action: 'violation', resource: id, result: 'failed', code: error.code, reason: error.message });
    this.cx.log.warn({ plugin: id, code: error.code, retries }, error.message);
  }

  /** Apply a restart decision to a failed plugin (not switched to a standby): its container removed, then restarted after its backoff, or not. */
  private async apply(m: Managed, decision: RestartDecision, error: { code: string; message: string }): Promise<void> {
    const { cx } = this;
    const { id, restart } = m.loaded.manifest;
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
  private switchIn(m: Managed, why: string, removeOld = true, early?: { retries: number; restarts: number; startedAt: number }): boolean {
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
    // The monitor watched the replaced container's processes: it watches the standby's now,
    // or after an early switch once the one replaced has its verdict (watchResources).
    if (early && old) this.early.add(m, old, container, early);
    else cx.monitoring.unwatch(id);
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
