import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BareEcho } from '../bench/bare-spread.js';
import { spreadWindows, type SpreadSide } from '../bench/spread-windows.js';

describe("the spread row's windows", () => {
  it("time each side's calls from the send to the answer, and count a failure apart", async () => {
    // Side A answers after 5 ms (a timer may fire up to 1 ms early: the loop caches its clock); side B fails every fourth call at once.
    const a: SpreadSide = { name: 'a', kinds: ['x', 'y'], procs: new Map(), send: (_t, done) => void setTimeout(() => done(true), 5) };
    let n = 0;
    const b: SpreadSide = { name: 'b', kinds: ['x'], procs: new Map(), send: (_t, done) => void setImmediate(() => done(n++ % 4 !== 0)) };
    const ra = await spreadWindows(a, 2, 0.1, 200);
    const rb = await spreadWindows(b, 2, 0.1, 200);
    expect(ra.us).toHaveLength(40);
    expect(ra.failed).toBe(0);
    expect(Math.min(...ra.us)).toBeGreaterThanOrEqual(3500);
    expect(ra.windowP99).toHaveLength(2);
    expect(rb.failed).toBe(10);
    expect(rb.us).toHaveLength(30);
  });
});

describe.runIf(process.platform === 'linux')('a bare echo', () => {
  it('matches answers to calls in order, and fails the calls still open when its socket closes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-test-bare-'));
    const file = path.join(dir, 'echo.sock');
    // The echo answers the first two lines in one write, then closes on the third.
    const server = net.createServer((c) => {
      let seen = '';
      c.on('data', (d) => {
        seen += d.toString();
        if (seen.split('\n').length - 1 === 2) c.write('a\nb\n');
        if (seen.split('\n').length - 1 === 3) c.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(file, r));
    try {
      const socket = await new Promise<net.Socket>((r) => {
        const s = net.connect(file, () => r(s));
      });
      const echo = new BareEcho('node', 0, socket);
      const results: string[] = [];
      const call = (name: string): Promise<void> => new Promise((r) => echo.send(`${name}\n`, (ok) => (results.push(`${name} ${ok}`), r())));
      await Promise.all([call('one'), call('two')]);
      await call('three');
      expect(results).toEqual(['one true', 'two true', 'three false']);
      echo.close();
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
