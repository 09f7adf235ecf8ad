import { errorText } from '../engine/docker.js';
import type { Workload } from './backend.js';
import type { ControllerContext } from './context.js';
import { earlySwitch, earlySwitchAllowed, keepsSwitch, type EarlySwitch } from './early-switch.js';
import { exitVerdict, oomAtExit, type ExitVerdict } from './exit-verdict.js';
import { ExitWatches } from './exit-watches.js';
import { delay } from './launcher.js';
import type { Managed } from './managed.js';
import { decideRestart, type RestartDecision } from './restart-policy.js';
import type { Standbys } from './standby.js';

/** How long the resource monitor's watch of a standby switched in early waits for the verdict on the container it replaced. */
const VERDICT_WAIT_MS = 10_000;

/** What the early switches need of the supervisor. */
export interface SwitchHost {
  /** Switch to the standby (`early`: keep the container switched out until its verdict). */
  switchIn(m: Managed, why: string, removeOld: boolean, early?: { retries: number; restarts: number; startedAt: number }): boolean;
  stopTimers(m: Managed): void;
  /** The failure's cause on the plugin's record: lastError, audit, log. */
  record(m: Managed, error: { code: string; message: string }, retries: number): void;
  /** What a failure without a standby does: teardown, then per the decision. */
  apply(m: Managed, decision: RestartDecision, error: { code: string; message: string }): Promise<void>;
}

/**
 * The switch to a warm standby at the end of the active container's processes, as the
 * kernel tells it (exit-watches.ts), before the engine reports the exit; and the verdict on
 * that exit when it comes (`settle`), which keeps the switch or undoes it. One pending switch
 * per plugin; the supervisor routes the exit of the container switched out here.
 */
export class EarlySwitches {
  /** The end of the processes of each plugin that keeps a standby (its current container). */
  readonly exits: ExitWatches;
  private readonly pending = new Map<Managed, EarlySwitch>();

  constructor(
    private readonly cx: ControllerContext,
    private readonly standbys: Standbys | undefined,
    private readonly host: SwitchHost,
  ) {
    this.exits = new ExitWatches(cx.log);
    // The kernel closes a plugin's connection as its process dies: its cgroup may be empty by now.
    if (standbys) cx.hub.on('disconnected', (id: string) => this.exits.check(id));
  }

  /** Watch the plugin's current container, if it keeps a standby to switch to. */
  arm(m: Managed): void {
    const container = m.container;
    if (container && this.standbys?.wanted(m)) void this.exits.arm(m.loaded.manifest.id, container, () => this.processesGone(m, container));
  }

  /** The pending switch of this plugin, if any. */
  get(m: Managed): EarlySwitch | undefined {
    return this.pending.get(m);
  }

  /** A switch made early (`switchIn`): pending until the verdict on `from`. */
  add(m: Managed, from: Workload, to: Workload, before: { retries: number; restarts: number; startedAt: number }): void {
    this.pending.set(m, earlySwitch(from, to, before));
  }

  /** Until the container switched out has its verdict (bounded: a verdict that never comes must not hold a start). */
  async verdictIn(m: Managed): Promise<void> {
    const settled = this.pending.get(m)?.settled;
    if (settled) await Promise.race([settled, delay(VERDICT_WAIT_MS)]);
  }

  /** The engine reported the exit of a container switched out early: classify it as any exit. */
  exited(m: Managed, early: EarlySwitch, code: number): Promise<void> {
    return this.settle(m, early, async () => exitVerdict(this.cx, m, early.from, code, await oomAtExit(this.cx, m.loaded.manifest.id, early.from, code), early.startedAt, () => true), code);
  }

  /**
   * The kernel says the processes of the plugin's container are gone (its cgroup is empty),
   * before the engine reports the exit: switch to its standby now, where a crash's verdict
   * would (early-switch.ts). The container switched out stays until the engine reports its
   * exit; `settle` then classifies it as any exit, and keeps the switch or undoes it.
   */
  private processesGone(m: Managed, container: Workload): void {
    const { cx } = this;
    if (m.container !== container || m.state !== 'ready' || cx.closing() || this.pending.has(m) || !this.standbys?.ready(m)) return;
    const history = { retries: m.retries, ...(m.readySince !== undefined ? { readySince: m.readySince } : {}) };
    const retries = earlySwitchAllowed(m.loaded.manifest.restart, history, Date.now(), cx.closing());
    if (retries === undefined) return;
    const before = { retries, restarts: m.restarts, startedAt: m.startedAt ?? 0 };
    this.host.stopTimers(m);
    if (!this.host.switchIn(m, "its processes were gone (the kernel's cgroup empty) before the engine reported the exit; the cause is audited once known", false, before)) return;
    m.retries = retries + 1;
    m.restarts++;
    cx.persist();
  }

  /**
   * The verdict of a container switched out early (`find`: the engine's exit classified, or
   * the seccomp kill record): audited and logged with its code, on the plugin's lastError.
   * A verdict that restarts keeps the switch; one that does not (a quarantine, a clean exit
   * under on-failure, the controller closing) ends the plugin as it would have ended without
   * the switch: the standby switched in is stopped and removed, its restart taken back.
   */
  async settle(m: Managed, early: EarlySwitch, find: () => Promise<ExitVerdict | undefined>, code?: number): Promise<void> {
    const { cx } = this;
    const id = m.loaded.manifest.id;
    // One verdict per switch: the exit being classified takes the seccomp record itself (kernel.take).
    if (early.settling) return;
    early.settling = true;
    let v: ExitVerdict | undefined;
    try {
      v = await find();
    } finally {
      // Pending until here: no second early switch, no second verdict while this one is found.
      if (this.pending.get(m) === early) this.pending.delete(m);
      // The verdict is in: the container switched out goes, and the monitor moves to the one switched in.
      cx.monitoring.unwatch(id, early.from.id);
      early.settle();
      void early.from.remove().catch((err: unknown) => cx.log.warn({ plugin: id, err: errorText(err) }, 'could not remove the container the standby replaced'));
    }
    if (!v) return;
    this.host.record(m, v.error, early.retries);
    // The plugin moved on meanwhile (stopped, restarted by hand, failed again): the cause is told, nothing else changes.
    if (m.container !== early.to || m.state !== 'ready') return;
    const decision = decideRestart(m.loaded.manifest.restart, early.retries, { cleanExit: v.cleanExit, quarantine: v.quarantine, closing: cx.closing() });
    if (keepsSwitch(decision, early.retries)) return cx.persist();
    this.host.stopTimers(m);
    m.state = 'restarting';
    m.restarts = early.restarts;
    m.retries = early.retries;
    delete m.readySince;
    if (code !== undefined) m.exitCode = code;
    cx.audit.record({ who: 'controller', action: 'stop', resource: id, result: 'stopped', reason: `the standby switched in when its processes were gone is stopped: ${v.error.code} does not restart it (${decision.action})` });
    await this.host.apply(m, decision, v.error);
  }
}
