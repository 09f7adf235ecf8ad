import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { fileURLToPath } from 'node:url';
import { nowUs } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The baseline for the hub: a raw `ws` echo between two processes over a Unix socket, with
 * nothing else in the path. Returns per-round-trip microseconds and a throughput figure.
 */
export async function rawEcho(rounds: number, inFlight: number, ms: number): Promise<{ us: number[]; perSecond: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-bench-echo-'));
  const sock = path.join(dir, 'echo.sock');
  const server = spawn(process.execPath, [
    '-e',
    `const { WebSocketServer } = require('ws');
     const s = new WebSocketServer({ noServer: true });
     const http = require('http').createServer();
     http.on('upgrade', (req, sock, head) => s.handleUpgrade(req, sock, head, (ws) => ws.on('message', (m) => ws.send(m, { binary: false }))));
     http.listen(${JSON.stringify(sock)}, () => console.log('ready'));`,
  ], { cwd: REPO });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
    });
    const ws = new WebSocket(`ws+unix://${sock}:/v1`);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    const msg = JSON.stringify({ type: 'request', id: 'x', to: ['echo'], method: 'echo', data: { text: 'hello world' } });
    const roundTrip = () => new Promise<void>((r) => {
      ws.once('message', () => r());
      ws.send(msg);
    });
    for (let i = 0; i < 4_000; i++) await roundTrip();
    const us: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = nowUs();
      await roundTrip();
      us.push(nowUs() - t);
    }
    // Throughput: keep `inFlight` messages outstanding for `ms`.
    let done = 0;
    const end = Date.now() + ms;
    const t0 = Date.now();
    await new Promise<void>((resolve) => {
      ws.on('message', () => {
        done++;
        if (Date.now() < end) ws.send(msg);
        else if (--inFlight === 0) resolve();
      });
      for (let i = 0; i < inFlight; i++) ws.send(msg);
    });
    const perSecond = (done / (Date.now() - t0)) * 1000;
    ws.close();
    return { us, perSecond };
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
