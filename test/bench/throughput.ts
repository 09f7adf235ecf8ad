import type { Controller } from '../../src/controller/controller.js';
import type { EchoWindow, RawEcho } from './raw-echo.js';
import { fmt, type Row } from './stats.js';

const IN_FLIGHT = 64;
/** The length of every window, the hub's and the raw echo's alike. */
const WINDOW_MS = 2_000;
/** A first, shorter window of each side, not counted: the caller's `concurrent` path and the echo's burst run cold once. */
const WARM_UP_MS = 500;
const DATA = { text: 'hello world' };

/** One window of the hub: the calling plugin keeps `IN_FLIGHT` calls outstanding for `ms` and counts them itself. */
async function hubWindow(host: Controller, ms: number): Promise<EchoWindow> {
  const r = (await host.call('caller-node', 'concurrent', { target: 'echo-node.echo', inFlight: IN_FLIGHT, ms, data: DATA }, 60_000)) as { calls: number; ms: number };
  return { done: r.calls, ms: r.ms, perSecond: (r.calls / r.ms) * 1000 };
}

/** The middle value; of an even count, the mean of the two middle ones. */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function k(perSecond: number): string {
  return `${fmt(perSecond / 1000, 1)}k`;
}

function range(xs: readonly number[]): string {
  return `${k(Math.min(...xs))}-${k(Math.max(...xs))}/s`;
}

/**
 * Hub throughput at 64 in flight beside the raw echo, window by window: raw echo, hub, raw
 * echo, hub, ... (`pairs` of each, same length), right where the hub is measured, with its
 * plugins running. A raw echo measured once at another moment read 151k-218k/s in four full
 * runs of one day, and that drift went straight into the ratio; here both sides meet the same
 * host. The row is the hub's median beside the raw echo's median; stderr prints every window.
 */
export async function throughputRow(host: Controller, echo: RawEcho, pairs: number): Promise<Row> {
  await echo.window(IN_FLIGHT, WARM_UP_MS);
  await hubWindow(host, WARM_UP_MS);
  const raw: number[] = [];
  const hub: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const r = await echo.window(IN_FLIGHT, WINDOW_MS);
    const h = await hubWindow(host, WINDOW_MS);
    raw.push(r.perSecond);
    hub.push(h.perSecond);
    process.stderr.write(`throughput window ${i + 1}/${pairs}: raw echo ${k(r.perSecond)}/s (${r.done} in ${r.ms} ms), hub ${k(h.perSecond)}/s (${h.done} in ${h.ms} ms), ${fmt(h.perSecond / r.perSecond, 2)}x\n`);
  }
  const value = median(hub);
  const baselineValue = median(raw);
  const ratios = hub.map((h, i) => h / raw[i]!);
  process.stderr.write(`throughput: hub median ${k(value)}/s (${range(hub)}), raw echo median ${k(baselineValue)}/s (${range(raw)}), ratio of the medians ${fmt(value / baselineValue, 2)}x (window pairs ${fmt(Math.min(...ratios), 2)}-${fmt(Math.max(...ratios), 2)}x)\n`);
  return {
    id: 'throughput.caller-node.echo-node',
    section: 'throughput',
    name: `caller-node -> echo-node, 64 in flight: median of ${pairs} windows of ${WINDOW_MS / 1000} s (${range(hub)})`,
    subject: 'calls/s through the hub',
    baseline: `raw ws echoes/s, 64 in flight: median of the ${pairs} windows alternating with the hub's (${range(raw)})`,
    value,
    baselineValue,
    unit: '/s',
    target: '>= 0.5x the raw echo',
    met: value >= 0.5 * baselineValue,
  };
}
