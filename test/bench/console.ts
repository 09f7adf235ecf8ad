/**
 * What the operator's console costs the controller with 200 plugins, and its update latency:
 * `node --import tsx test/bench/console.ts`. The controller is the fake of the console's unit
 * tests (200 plugins with changing usage, a real audit trail): running 200 real plugins on a
 * 2-core test machine would measure the plugins, not the console. Measured in this process:
 *   - memory: heap and array buffers before the console and after an hour of history (3600
 *     ticks, fed at once);
 *   - CPU: this process over CONSOLE_BENCH_S seconds (default 30) at one tick a second, idle,
 *     then with a real chromium page following the live grid of 200 rows;
 *   - latency: from the controller's sample to the page's render, as the page reports it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startConsole } from '../../src/console/server.js';
import { silentLogger } from '../../src/log.js';
import { fakeConsoleHost } from '../unit/support/console-host.js';

const SECONDS = Number(process.env.CONSOLE_BENCH_S ?? 30);
const TOKENS = { operator: 'bench-operator-token-0123', viewer: 'bench-viewer-token-01234' };
const MB = 1024 * 1024;

function mem(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function cpuOver(seconds: number): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1000 / (performance.now() - t0)) * 100;
}

const fake = fakeConsoleHost(200);
const before = mem();
const c = await startConsole(fake.host, { address: { host: '127.0.0.1', port: 0 }, tokens: TOKENS, log: silentLogger });
const t0 = performance.now();
for (let i = 0; i < 3600; i++) c.state.tick(Date.now() - (3600 - i) * 1000);
const fillMs = performance.now() - t0;
const after = mem();
console.log(`200 plugins: one tick (grid, history, call window, JSON) ${(fillMs / 3600).toFixed(2)} ms; an hour of history + state: ${((after - before) / MB).toFixed(1)} MB`);
console.log(`CPU of the controller process for the console, idle (no page): ${(await cpuOver(SECONDS)).toFixed(2)} % of one core`);

const profile = mkdtempSync(path.join(os.tmpdir(), 'lm-console-bench-'));
if (!existsSync('/usr/bin/chromium')) {
  console.log('no /usr/bin/chromium: the page measurement is skipped');
} else {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await page.goto(c.url);
  await page.fill('input[name=name]', 'bench');
  await page.fill('input[name=token]', TOKENS.operator);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=plugin-row][data-plugin=plugin-199]');
  await page.click('[data-testid=plugin-row][data-plugin=plugin-100]');
  const lags: number[] = [];
  const cpu = cpuOver(SECONDS);
  for (let i = 0; i < SECONDS - 1; i++) {
    await page.waitForTimeout(1000);
    const lag = Number(await page.textContent('[data-testid=lag]'));
    if (Number.isFinite(lag)) lags.push(lag);
  }
  console.log(`CPU of the controller process with one page following 200 plugins: ${(await cpu).toFixed(2)} % of one core`);
  lags.sort((a, b) => a - b);
  console.log(`update latency (sample to render), ${lags.length} samples: p50 ${lags[Math.floor(lags.length / 2)]} ms, max ${lags[lags.length - 1]} ms`);
  await ctx.close();
}
await c.close();
await fake.close();
rmSync(profile, { recursive: true, force: true });
