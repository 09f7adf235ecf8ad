import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Docker } from '../../src/engine/docker.js';
import { Controller } from '../../src/controller/controller.js';
import type { Logger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { benchHome } from './bench-home.js';
import { nowUs, pct, type Row } from './stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const FLOOD_MS = Number(process.env.BENCH_SOAK_MS ?? 5_000);
const MODES = ['refused', 'deep', 'deaf', 'broadcast'] as const;

/**
 * The controller under attack: legitimate host -> plugin calls timed while a hostile host
 * client (another process) floods the hub, beside the same calls with no flood, and the
 * controller's RSS before, during and after each flood. The controller runs with its
 * default limits, as an operator would run it.
 */
export async function soakBench(docker: Docker, log: Logger, instance: string): Promise<Row[]> {
  const { home, remove } = benchHome('soak', `${instance}-soak`);
  const host = await Controller.create({ log, home, docker, startTimeoutMs: 60_000 });
  const rows: Row[] = [];
  try {
    host.load([loadManifest(path.join(REPO, 'test', 'fixtures', 'bench', 'echo-node'))]);
    await host.startAll();
    const port = await host.hub.listenHost(0);
    await legit(host, FLOOD_MS / 2); // warm up
    for (const mode of MODES) {
      global.gc?.();
      const quiet = await legit(host, FLOOD_MS);
      const rssBefore = process.memoryUsage().rss;
      let peak = rssBefore;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
      const flood = flooder(`ws://127.0.0.1:${port}/v1`, host.token, mode, FLOOD_MS);
      const loud = await legit(host, FLOOD_MS);
      const report = await flood;
      clearInterval(sampler);
      await new Promise((r) => setTimeout(r, 2_000));
      global.gc?.();
      const rssAfter = process.memoryUsage().rss;
      const what = `${mode} flood (${report})`;
      rows.push(
        { section: 'soak', name: `host -> echo-node p50 during a ${what}`, subject: '', baseline: 'the same calls, no flood, just before', value: pct(loud, 50), baselineValue: pct(quiet, 50), unit: 'us' },
        { section: 'soak', name: `host -> echo-node p99 during the ${mode} flood`, subject: '', baseline: 'the same, no flood', value: pct(loud, 99), baselineValue: pct(quiet, 99), unit: 'us' },
        { section: 'soak', name: `controller RSS, peak during the ${mode} flood`, subject: '', baseline: 'RSS before it', value: peak / 2 ** 20, baselineValue: rssBefore / 2 ** 20, unit: 'MiB' },
        { section: 'soak', name: `controller RSS 2 s after the ${mode} flood`, subject: '', baseline: 'RSS before it', value: rssAfter / 2 ** 20, baselineValue: rssBefore / 2 ** 20, unit: 'MiB' },
      );
    }
  } finally {
    await host.close();
    remove();
  }
  return rows;
}

/** Sequential calls for `ms`, each timed (us). */
async function legit(host: Controller, ms: number): Promise<number[]> {
  const us: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t = nowUs();
    await host.call('echo-node', 'echo', { text: 'hello world' }, 30_000);
    us.push(nowUs() - t);
  }
  return us;
}

function flooder(url: string, token: string, mode: string, ms: number): Promise<string> {
  const child = spawn(process.execPath, [path.join(REPO, 'test', 'fixtures', 'clients', 'flood-client.mjs'), url, token, mode, String(ms)], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => {
      try {
        const r = JSON.parse(out) as { sent: number; closedByHub: boolean };
        resolve(`${r.sent} frames${r.closedByHub ? ', cut off by the hub' : ''}`);
      } catch {
        reject(new Error(`the flooder said: ${out}`));
      }
    });
  });
}
