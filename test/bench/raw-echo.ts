import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { fileURLToPath } from 'node:url';
import { nowUs } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Round trips before any is timed: the JIT of both processes settles first. */
const WARM_UP = 4_000;

/** One throughput window: messages echoed, over how long, and the rate. */
export interface EchoWindow {
  readonly done: number;
  readonly ms: number;
  readonly perSecond: number;
}

/**
 * The baseline for the hub: a raw `ws` echo between two processes over a Unix socket, with
 * nothing else in the path (an echo server spawned as a child, the client in this process).
 * Kept open so that its throughput windows can be taken right beside the hub's, in turns
 * (test/bench/throughput.ts): the host drifts by more than the gap between the two.
 */
export interface RawEcho {
  /** Time `rounds` sequential round trips, microseconds each. */
  roundTrips(rounds: number): Promise<number[]>;
  /** Keep `inFlight` messages outstanding for `ms`, then let them drain. */
  window(inFlight: number, ms: number): Promise<EchoWindow>;
  close(): void;
}

const MSG = JSON.stringify({ type: 'request', id: 'x', to: ['echo'], method: 'echo', data: { text: 'hello world' } });

function startServer(sock: string): ChildProcess {
  return spawn(process.execPath, [
    '-e',
    `const { WebSocketServer } = require('ws');
     const s = new WebSocketServer({ noServer: true });
     const http = require('http').createServer();
     http.on('upgrade', (req, sock, head) => s.handleUpgrade(req, sock, head, (ws) => ws.on('message', (m) => ws.send(m, { binary: false }))));
     http.listen(${JSON.stringify(sock)}, () => console.log('ready'));`,
  ], { cwd: REPO });
}

/** Start the echo server, connect, and warm both up. */
export async function openRawEcho(): Promise<RawEcho> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-bench-echo-'));
  const sock = path.join(dir, 'echo.sock');
  const server = startServer(sock);
  const close = () => {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
    });
    const ws = new WebSocket(`ws+unix://${sock}:/v1`);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    const roundTrip = () =>
      new Promise<void>((r) => {
        ws.once('message', () => r());
        ws.send(MSG);
      });
    for (let i = 0; i < WARM_UP; i++) await roundTrip();
    return {
      async roundTrips(rounds) {
        const us: number[] = [];
        for (let i = 0; i < rounds; i++) {
          const t = nowUs();
          await roundTrip();
          us.push(nowUs() - t);
        }
        return us;
      },
      window: (inFlight, ms) => echoWindow(ws, inFlight, ms),
      close() {
        ws.close();
        close();
      },
    };
  } catch (err) {
    close();
    throw err;
  }
}

/** As the hub's caller does: each answer sends the next until `ms` is over, then the rest drain. */
function echoWindow(ws: WebSocket, inFlight: number, ms: number): Promise<EchoWindow> {
  let done = 0;
  let outstanding = inFlight;
  const t0 = Date.now();
  const end = t0 + ms;
  return new Promise<EchoWindow>((resolve) => {
    const on = () => {
      done++;
      if (Date.now() < end) ws.send(MSG);
      else if (--outstanding === 0) {
        ws.off('message', on);
        const took = Date.now() - t0;
        resolve({ done, ms: took, perSecond: (done / took) * 1000 });
      }
    };
    ws.on('message', on);
    for (let i = 0; i < inFlight; i++) ws.send(MSG);
  });
}
