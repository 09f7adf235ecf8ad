import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';

/** A stand-in engine that answers only the ping endpoint, and can be stopped and started. */
function fakeEngine(socketPath: string): { start(): Promise<void>; stop(): Promise<void> } {
  let server: Server | undefined;
  return {
    start: () =>
      new Promise((resolve) => {
        server = createServer((req, res) => {
          if (req.url?.endsWith('/_ping')) res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
          else res.writeHead(404).end();
        });
        server.listen(socketPath, () => resolve());
      }),
    stop: () =>
      new Promise((resolve) => {
        server?.closeAllConnections();
        server?.close(() => resolve());
      }),
  };
}

async function until(fn: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('engine watch', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('says when the engine stops answering and when it is back', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-engine-'));
    dirs.push(dir);
    const sock = path.join(dir, 'docker.sock');
    const engine = fakeEngine(sock);
    await engine.start();
    const home = resolveHome({ LOGOMESH_HOME: path.join(dir, 'home'), LOGOMESH_INSTANCE: 'engine-watch-test' });
    const host = await Controller.create({ log: silentLogger, home, docker: new Docker({ socketPath: sock }), engineCheckMs: 50 });
    try {
      expect(host.engineStatus().up).toBe(true);
      await engine.stop();
      await until(() => !host.engineStatus().up, 3_000);
      expect(host.engineStatus().lastError).toMatch(/ENOENT|ECONNREFUSED|ECONNRESET|EPIPE|no answer/);
      await engine.start();
      await until(() => host.engineStatus().up, 5_000);
    } finally {
      await engine.stop();
      await host.close();
    }
  });
});
