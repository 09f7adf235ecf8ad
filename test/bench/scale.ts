/**
 * Scale on one host (issue 20 item 5): N idle plugins of mixed runtimes under one
 * controller. `up` of all of them, the controller's own CPU and memory at idle, and the
 * hub's latency with 1,000 calls a second spread across them.
 *
 *   BENCH_SCALE          plugins (default 200): half Python, half Node.js, and the Go and
 *                        Rust examples (tokenizer, hasher)
 *   BENCH_SCALE_SECONDS  how long the idle CPU and the spread calls are measured (default 20)
 *   BENCH_SCALE_MONITOR  0: without the resource monitor and the Docker health check
 *
 * Alone: `node --import tsx test/bench/scale.ts` (as root, with the engine and the images).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Controller } from '../../src/controller/controller.js';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { connectEngine, type Docker } from '../../src/engine/docker.js';
import { createLogger, type Logger } from '../../src/log.js';
import { benchHome } from './bench-home.js';
import { settleHost, type Settled } from './settle.js';
import { cpuTimes, idlePercent, processesNamed, processTree, schedDelta, schedTotals, type SchedTotals } from './sched-stat.js';
import { fmt, nowUs, pct, type Row } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const N = Number(process.env.BENCH_SCALE ?? 200);
const SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 20);
const RATE = 1_000;
/** /proc/stat's unit (USER_HZ): 100 on every Linux the product runs on. */
const CLOCK_TICKS = 100;

/** Plugin folders: copies of the echo fixtures under ids of their own, and the two compiled examples. */
export function scalePlugins(root: string, n: number): { id: string; method: string }[] {
  const out: { id: string; method: string }[] = [];
  const compiled = n >= 4 ? [{ id: 'tokenizer', method: 'tokenize' }, { id: 'hasher', method: 'digest' }] : [];
  for (const c of compiled) {
    cpSync(path.join(REPO, 'manifests', c.id), path.join(root, c.id), { recursive: true });
    out.push(c);
  }
  for (let i = 0; out.length < n; i++) {
    const runtime = i % 2 === 0 ? 'python' : 'node';
    const id = `scale-${runtime}-${String(i).padStart(3, '0')}`;
    const from = path.join(REPO, 'test', 'fixtures', 'bench', `echo-${runtime}`);
    const dir = path.join(root, id);
    mkdirSync(dir, { recursive: true });
    cpSync(from, dir, { recursive: true });
    // Idle plugins as an operator would run many: a modest share of the CPU each.
    const yaml = readFileSync(path.join(from, 'plugin.yaml'), 'utf8').replace(/^id: .*$/m, `id: ${id}`).replace(/maxCpuPercent: \d+/, 'maxCpuPercent: 25');
    writeFileSync(path.join(dir, 'plugin.yaml'), yaml);
    out.push({ id, method: 'echo' });
  }
  return out;
}

function logSettled(what: string, s: Settled): void {
  process.stderr.write(`scale: before the ${what}: the host ${fmt(s.idlePercent, 1)}% idle over 1 s after ${fmt(s.waitedMs / 1000, 1)} s${s.settled ? '' : ' (not settled: measured anyway)'}, load ${s.load.map((l) => l.toFixed(1)).join(' ')}\n`);
}

/** The controller's idle CPU, % of a core: its own process and its helper processes. */
interface IdleCpu {
  readonly total: number;
  readonly controller: number;
  /** cgwatch and the mount helper (lm-mount): the controller's children, which process.cpuUsage() does not count. */
  readonly helpers: number;
}

/**
 * CPU over fn(): this process's (process.cpuUsage) and that of its child processes, the
 * controller's helpers (cgwatch reads the kernel's notifications and the kernel log for the
 * monitor; lm-mount stages mounts), from their threads' schedstat (ns on a CPU). A helper
 * that ended meanwhile is not counted; none ends at idle.
 */
async function idleCpu(fn: () => Promise<void>): Promise<IdleCpu> {
  const helpers = processTree(process.pid).slice(1);
  const h0 = schedTotals(helpers);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  const h = schedDelta(h0, schedTotals(helpers));
  const ms = performance.now() - t0;
  const controller = ((c.user + c.system) / 1000 / ms) * 100;
  const helper = (h.runNs / 1e6 / ms) * 100;
  return { total: controller + helper, controller, helpers: helper };
}

/** The runtime a plugin of scalePlugins() stands for: python, node, or the compiled example's id. */
function kindOf(id: string): string {
  return id.startsWith('scale-') ? id.split('-')[1]! : id;
}

/** Every process of each runtime's containers (a container's init and the plugin under it), for their scheduler figures. */
async function processesByKind(docker: Docker, host: Controller, plugins: { id: string }[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const p of plugins) {
    const info = await docker.getContainer(host.status(p.id).containerId!).inspect();
    const k = kindOf(p.id);
    (out.get(k) ?? out.set(k, []).get(k)!).push(...processTree(info.State.Pid));
  }
  return out;
}

/**
 * Calls at RATE a second, open loop (each at its time, whether the earlier ones returned), to
 * plugins taken in turn. Beside each runtime's latencies: its threads' CPU time, their wait
 * for a CPU once runnable, and their runs, per call (schedstat), and the host's idle share.
 * The benchmark holds nothing per call beyond its latency, in a preallocated array: a promise
 * kept for each of the 10,000 calls (and a growing array of latencies) survived every young
 * collection and was copied by it, and those pauses of the process that also runs the hub
 * fell on the calls it measures (docs/performance.md#the-spread-calls-tail-the-controllers-side).
 */
async function spreadCalls(host: Controller, plugins: { id: string; method: string }[], seconds: number, procs: Map<string, number[]>): Promise<{ us: number[]; failed: number }> {
  const total = RATE * seconds;
  const lat = new Float64Array(total);
  const kinds = plugins.map((p) => kindOf(p.id));
  let done = 0;
  let failed = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((r) => (allDone = r));
  const settle = (): void => void (++done === total && allDone());
  const sched0 = new Map<string, SchedTotals>([...procs].map(([k, pids]) => [k, schedTotals(pids)]));
  // The host's own background work during the calls: the engine's shims (each frees its memory every 30 s) and the kernel's kdamond.
  const background = new Map([['containerd-shims', processesNamed('containerd-shim')], ['kdamond', processesNamed('kdamond')]]);
  const background0 = new Map([...background].map(([k, pids]) => [k, schedTotals(pids)]));
  const cpu0 = cpuTimes();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ', 3).join(' ');
  const loop = loopTrace();
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const p = plugins[i % plugins.length]!;
    const t = nowUs();
    host.call(p.id, p.method, { text: 'hello world' }, 10_000).then(
      () => {
        lat[i] = nowUs() - t;
        settle();
      },
      () => {
        lat[i] = NaN;
        failed++;
        settle();
      },
    );
  }
  await finished;
  process.stderr.write(`scale: spread calls: ${loop.stop()}\n`);
  const byKind = new Map<string, number[]>();
  const us: number[] = [];
  lat.forEach((d, i) => {
    if (Number.isNaN(d)) return;
    us.push(d);
    const kind = kinds[i % plugins.length]!;
    (byKind.get(kind) ?? byKind.set(kind, []).get(kind)!).push(d);
  });
  const cpu1 = cpuTimes();
  const stealMs = ((cpu1.steal - cpu0.steal) * 1000) / CLOCK_TICKS;
  process.stderr.write(`scale: spread calls: the host ${fmt(idlePercent(cpu0, cpu1), 1)}% idle, ${fmt(stealMs)} ms of CPU stolen by the hypervisor, load average ${load0} at the start\n`);
  const ranMs = [...background].map(([k, pids]) => `${k} ${fmt(schedDelta(background0.get(k)!, schedTotals(pids)).runNs / 1e6)} ms`);
  process.stderr.write(`scale: spread calls: the host's background work ran ${ranMs.join(', ')} of CPU during them\n`);
  for (const [kind, xs] of byKind) {
    const d = schedDelta(sched0.get(kind) ?? { runNs: 0, waitNs: 0, slices: 0 }, schedTotals(procs.get(kind) ?? []));
    const perCall = (ns: number): string => fmt(ns / 1000 / xs.length);
    process.stderr.write(
      `scale: spread calls to ${kind}: p50 ${fmt(pct(xs, 50))} us, p99 ${fmt(pct(xs, 99))} us, max ${fmt(Math.max(...xs))} us (${xs.length}); ` +
        `per call its threads ran ${perCall(d.runNs)} us, waited ${perCall(d.waitNs)} us for a CPU, ${fmt(d.slices / xs.length, 2)} runs\n`,
    );
  }
  return { us, failed };
}

/**
 * The benchmark process's own stalls during the calls (it runs the controller and the hub):
 * its garbage collections and how late its event loop turned (a 1 ms resolution histogram, so
 * a turn is counted at least 1 ms late: its p50 shows that floor). Cheap: no timer of its own
 * beyond the histogram's, one entry per collection.
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
      return `${gcs.length} GC pauses, ${fmt(gcs.reduce((a, b) => a + b, 0), 1)} ms in all, at most ${fmt(Math.max(0, ...gcs), 1)} ms; event loop delay p50 ${ms(delay.percentile(50))} ms, p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms`;
    },
  };
}

/** The CPU quota periods in which the plugins' containers were throttled, summed (cgroup v1 cpu.stat, cgroupfs driver). */
function throttled(host: Controller, plugins: { id: string }[]): number {
  let sum = 0;
  for (const p of plugins) {
    const id = host.status(p.id).containerId;
    try {
      sum += Number(/^nr_throttled (\d+)$/m.exec(readFileSync(`/sys/fs/cgroup/cpu/docker/${id}/cpu.stat`, 'utf8'))?.[1] ?? 0);
    } catch {
      // Another cgroup layout: not counted.
    }
  }
  return sum;
}

export async function scaleBench(docker: Docker, log: Logger, instance: string, n = N): Promise<Row[]> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lm-bench-scale-'));
  const { home, remove } = benchHome('scale', `${instance}-scale`);
  const plugins = scalePlugins(root, n);
  const rows: Row[] = [];
  const host = await Controller.create({
    log,
    home,
    docker,
    startTimeoutMs: 60_000,
    ...(process.env.BENCH_SCALE_CONCURRENCY ? { startConcurrency: Number(process.env.BENCH_SCALE_CONCURRENCY) } : {}),
    // BENCH_SCALE_MONITOR=0: without the resource monitor and the Docker health check, to see what they cost.
    ...(process.env.BENCH_SCALE_MONITOR === '0' ? { monitoring: { enabled: false, healthCheckMs: false } } : {}),
  });
  try {
    host.loadDirectory(root);
    const freeBefore = os.freemem();
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await host.startAll();
    const upMs = performance.now() - t0;
    const upCpu = process.cpuUsage(c0);
    process.stderr.write(`scale: the controller used ${fmt((upCpu.user + upCpu.system) / 1000)} ms of CPU for the starts (${fmt((upCpu.user + upCpu.system) / 1000 / n)} ms a plugin)\n`);
    const ready = host.list().filter((p) => p.state === 'ready').length;
    process.stderr.write(`scale: ${ready} of ${n} plugins ready in ${fmt(upMs / 1000, 1)} s\n`);
    await new Promise((r) => setTimeout(r, 5_000)); // starts settle: health checks begin, standbys none
    // Idle means after the host's own work of the starts is over too (the engine's and the
    // kernel's, which go on after the last ready): bounded, and what it found is printed.
    logSettled('idle CPU', await settleHost({ maxMs: 30_000 }));
    global.gc?.();
    const cpu = await idleCpu(() => new Promise((r) => setTimeout(r, SECONDS * 1000)));
    const idle = cpu.total;
    process.stderr.write(`scale: idle CPU ${fmt(cpu.total, 2)}% of a core: the controller's process ${fmt(cpu.controller, 2)}%, its helpers (cgwatch, lm-mount) ${fmt(cpu.helpers, 2)}%; load ${readFileSync('/proc/loadavg', 'utf8').split(' ', 3).join(' ')}\n`);
    const rss = process.memoryUsage().rss;
    const hostMiB = (freeBefore - os.freemem()) / 2 ** 20;
    // A warm-up, as for every latency row: each plugin's first calls run before its JIT settles.
    for (let round = 0; round < 20; round++) await Promise.all(plugins.map((p) => host.call(p.id, p.method, { text: 'hello world' }, 30_000).catch(() => undefined)));
    logSettled('spread calls', await settleHost({ maxMs: 20_000 }));
    const procs = await processesByKind(docker, host, plugins);
    const throttledBefore = throttled(host, plugins);
    const { us, failed } = await spreadCalls(host, plugins, Math.min(SECONDS, 10), procs);
    const throttledAfter = throttled(host, plugins);
    process.stderr.write(`scale: CPU quota periods throttled across the plugins during the spread calls: ${throttledAfter - throttledBefore}\n`);
    const p50 = pct(us, 50);
    const p99 = pct(us, 99);
    process.stderr.write(`scale: idle controller ${fmt(idle, 2)}% of a core, RSS ${fmt(rss / 2 ** 20, 0)} MiB; spread calls p50 ${fmt(p50)} us p99 ${fmt(p99)} us, ${failed} failed\n`);
    rows.push(
      { id: 'scale.up', section: 'scale', name: `\`up\` of ${n} idle plugins (${ready} ready; half Python, half Node.js, tokenizer, hasher)`, subject: '', baseline: 'target', value: upMs / 1000, baselineValue: 30, unit: 's', target: '<= 30 s', met: ready === n && upMs <= 30_000 },
      { id: 'scale.idle', section: 'scale', name: `controller CPU at idle with ${n} plugins (health checks, heartbeats, engine watch, monitor; its helper processes cgwatch and lm-mount included)`, subject: '', baseline: 'target', value: idle, baselineValue: 2, unit: '% of a core', target: '<= 2% of a core', met: idle <= 2 },
      { section: 'scale', name: `controller RSS with ${n} plugins (whole benchmark process)`, subject: '', baseline: 'before the plugins started', value: rss / 2 ** 20, baselineValue: rssBefore / 2 ** 20, unit: 'MiB', target: 'stated' },
      { section: 'scale', name: `host memory taken by the ${n} plugins (free memory before and after their start)`, subject: '', baseline: 'per plugin', value: hostMiB, baselineValue: hostMiB / n, unit: 'MiB', target: 'stated' },
      { section: 'scale', name: `host -> plugin p50, ${RATE} calls/s spread across ${n} plugins${failed ? ` (${failed} failed)` : ''}`, subject: '', baseline: 'target p99', value: p50, baselineValue: 2000, unit: 'us', target: 'stated' },
      { id: 'scale.spread', section: 'scale', name: `host -> plugin p99, ${RATE} calls/s spread across ${n} plugins`, subject: '', baseline: 'target', value: p99, baselineValue: 2000, unit: 'us', target: '< 2 ms', met: p99 < 2000 && failed === 0 },
    );
  } finally {
    await host.close();
    remove();
    await removeByLabel(docker, `${instance}-scale`);
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const instance = `bench-scale-${process.pid}`;
  const rows = await scaleBench(await connectEngine(), createLogger('bench', 'warn'), instance);
  for (const r of rows) console.log(`${r.name}: ${fmt(r.value, 1)} ${r.unit}${r.target ? ` (target ${r.target}${r.met === undefined ? '' : r.met ? ': met' : ': missed'})` : ''}`);
}
