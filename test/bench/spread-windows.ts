/**
 * The spread calls' open loop, in windows, for one side at a time (the hub's plugins, or the
 * bare echoes of bare-spread.ts): calls at a fixed rate, each sent at its time whether the
 * earlier ones returned, to the side's targets in turn, timed from the send to the answer by
 * the same code for both. Beside each window's
 * latencies, on stderr: the host's idle share, the CPU the hypervisor took (steal), the host's
 * background work (the engine's shims, the kernel's kdamond), this process's GC pauses and
 * event-loop delay; and at the end each side's threads' CPU, wait and runs per call.
 */
import { readFileSync } from 'node:fs';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { cpuTimes, idlePercent, processesNamed, schedDelta, schedTotals, type SchedTotals } from './sched-stat.js';
import { fmt, nowUs, pct } from './stats.js';

/** /proc/stat's unit (USER_HZ): 100 on every Linux the product runs on. */
const CLOCK_TICKS = 100;

/** One side of the windows: targets taken in turn, each of a kind (its runtime). */
export interface SpreadSide {
  readonly name: string;
  /** The kind of each target (python, node, or a compiled example's id). */
  readonly kinds: readonly string[];
  /** Every process of each kind's containers, for their scheduler figures. */
  readonly procs: ReadonlyMap<string, readonly number[]>;
  /** Send one call to target `t`; `done` once its answer (ok) or its failure came. */
  send(t: number, done: (ok: boolean) => void): void;
}

/** A side's figures over all its windows. */
export interface SideResult {
  readonly us: number[];
  readonly failed: number;
  /** p99 of each of its windows, us, in order. */
  readonly windowP99: number[];
}

/**
 * The open loop: `total` calls at `rate` a second, call i to target `at + i` (round robin).
 * Latencies go into `lat` from `at`, NaN for a failure. Nothing is held per call beyond its start and its
 * latency, in preallocated arrays: a promise kept for each call survived every young
 * collection of the process that also runs the hub, and those pauses fell on the calls
 * (docs/performance.md#the-spread-calls-tail-the-controllers-side).
 */
async function openLoop(side: SpreadSide, total: number, rate: number, lat: Float64Array, at: number): Promise<number> {
  const started = new Float64Array(total);
  let done = 0;
  let failed = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((r) => (allDone = r));
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    started[i] = nowUs();
    side.send((at + i) % side.kinds.length, (ok) => {
      lat[at + i] = ok ? nowUs() - started[i]! : NaN;
      if (!ok) failed++;
      if (++done === total) allDone();
    });
  }
  await finished;
  return failed;
}

/**
 * This process's own stalls during a window (it runs the controller and the hub): its
 * garbage collections and how late its event loop turned (a 1 ms resolution histogram, so a
 * turn is counted at least 1 ms late: its p50 shows that floor).
 */
function loopTrace(): { stop(): string } {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const gcs: number[] = [];
  const observer = new PerformanceObserver((list) => void list.getEntries().forEach((e) => gcs.push(e.duration)));
  observer.observe({ entryTypes: ['gc'] });
  delay.enable();
  return {
    stop() {
      delay.disable();
      observer.disconnect();
      const ms = (ns: number): string => fmt(ns / 1e6, 2);
      return `${gcs.length} GC pauses (${fmt(gcs.reduce((a, b) => a + b, 0), 1)} ms, at most ${fmt(Math.max(0, ...gcs), 1)}); loop delay p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms`;
    },
  };
}

/** What a window's host did besides the calls: its idle share, steal, load, and the shims' and kdamond's CPU. */
function hostTrace(): { stop(): string } {
  const background = new Map([['shims', processesNamed('containerd-shim')], ['kdamond', processesNamed('kdamond')]]);
  const background0 = new Map([...background].map(([k, pids]) => [k, pids.map((pid) => schedTotals([pid]).runNs)]));
  // Each process's own CPU, and none below 0: a shim whose container went meanwhile (another user's) reads 0 at the end.
  const ranMs = (k: string, pids: number[]): number => pids.reduce((sum, pid, i) => sum + Math.max(0, schedTotals([pid]).runNs - background0.get(k)![i]!), 0) / 1e6;
  const cpu0 = cpuTimes();
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ', 1)[0];
  return {
    stop() {
      const cpu1 = cpuTimes();
      const ran = [...background].map(([k, pids]) => `${k} ${fmt(ranMs(k, pids))} ms`);
      return `host ${fmt(idlePercent(cpu0, cpu1), 1)}% idle, ${fmt(((cpu1.steal - cpu0.steal) * 1000) / CLOCK_TICKS)} ms stolen, load ${load}; ${ran.join(', ')}`;
    },
  };
}

/**
 * `windows` windows of `seconds` for one side, at `rate` calls a second. Prints a line per
 * window and, at the end, the side's figures by kind.
 */
export async function spreadWindows(side: SpreadSide, windows: number, seconds: number, rate: number): Promise<SideResult> {
  const perWindow = Math.round(rate * seconds);
  const lat = new Float64Array(perWindow * windows);
  let failed = 0;
  const windowP99: number[] = [];
  const sched = new Map([...side.procs.keys()].map((k) => [k, { runNs: 0, waitNs: 0, slices: 0 } as SchedTotals]));
  for (let w = 0; w < windows; w++) {
    const sched0 = new Map([...side.procs].map(([k, pids]) => [k, schedTotals([...pids])]));
    const host = hostTrace();
    const loop = loopTrace();
    const at = w * perWindow;
    failed += await openLoop(side, perWindow, rate, lat, at);
    const loopLine = loop.stop();
    const waits: string[] = [];
    for (const [k, pids] of side.procs) {
      const d = schedDelta(sched0.get(k)!, schedTotals([...pids]));
      waits.push(`${k} ${fmt(d.waitNs / 1000 / (perWindow * (side.kinds.filter((x) => x === k).length / side.kinds.length)))}`);
      const sum = sched.get(k)!;
      sched.set(k, { runNs: sum.runNs + d.runNs, waitNs: sum.waitNs + d.waitNs, slices: sum.slices + d.slices });
    }
    const xs = [...lat.subarray(at, at + perWindow)].filter((d) => !Number.isNaN(d));
    windowP99.push(pct(xs, 99));
    process.stderr.write(`scale: window ${w + 1} (${side.name}): p50 ${fmt(pct(xs, 50))} us, p99 ${fmt(pct(xs, 99))} us, max ${fmt(Math.max(...xs))} us; waited for a CPU a call (us): ${waits.join(', ')}; ${host.stop()}; ${loopLine}\n`);
  }
  const us: number[] = [];
  const byKind = new Map<string, number[]>();
  lat.forEach((d, i) => {
    if (Number.isNaN(d)) return;
    us.push(d);
    const kind = side.kinds[i % side.kinds.length]!;
    (byKind.get(kind) ?? byKind.set(kind, []).get(kind)!).push(d);
  });
  for (const [kind, xs] of byKind) {
    const d = sched.get(kind) ?? { runNs: 0, waitNs: 0, slices: 0 };
    const perCall = (ns: number): string => fmt(ns / 1000 / xs.length);
    process.stderr.write(
      `scale: spread calls (${side.name}) to ${kind}: p50 ${fmt(pct(xs, 50))} us, p99 ${fmt(pct(xs, 99))} us, max ${fmt(Math.max(...xs))} us (${xs.length}); ` +
        `per call its threads ran ${perCall(d.runNs)} us, waited ${perCall(d.waitNs)} us for a CPU, ${fmt(d.slices / xs.length, 2)} runs\n`,
    );
  }
  return { us, failed, windowP99 };
}
