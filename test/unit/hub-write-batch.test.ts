import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { WriteBatch } from '../../src/hub/write-batch.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';

const policy = (id: string, exposes: string[], consumes: string[] = []): PluginPolicy => ({ id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: false, publishes: [], subscribes: [] });

/** A connected pair of Unix sockets; `chunks` counts the reads on the far side. */
async function socketPair(dir: string): Promise<{ near: net.Socket; chunks: Buffer[]; close: () => void }> {
  const file = path.join(dir, 'pair.sock');
  const chunks: Buffer[] = [];
  let far: net.Socket | undefined;
  const server = net.createServer((s) => {
    far = s;
    s.on('data', (d: Buffer) => chunks.push(d));
  });
  await new Promise<void>((r) => server.listen(file, r));
  const near = net.connect(file);
  await new Promise((r) => near.once('connect', r));
  while (!far) await new Promise((r) => setImmediate(r));
  return { near, chunks, close: () => (near.destroy(), far?.destroy(), server.close()) };
}

describe('write batching', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-batch-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes made in one turn leave in one system call, counted as queued until then', async () => {
    const { near, chunks, close } = await socketPair(dir);
    try {
      const batch = new WriteBatch(near);
      for (let i = 0; i < 50; i++) {
        batch.hold();
        near.write(`frame ${i};`);
      }
      // Still corked in this turn: nothing has reached the kernel, and all of it counts.
      expect(near.writableLength).toBe(Array.from({ length: 50 }, (_, i) => `frame ${i};`).join('').length);
      await new Promise((r) => setTimeout(r, 50));
      expect(Buffer.concat(chunks).toString()).toBe(Array.from({ length: 50 }, (_, i) => `frame ${i};`).join(''));
      expect(chunks.length).toBe(1);
      // The next turn corks again.
      batch.hold();
      near.write('late;');
      await new Promise((r) => setTimeout(r, 50));
      expect(chunks.length).toBe(2);
    } finally {
      close();
    }
  });

  it('a destroyed socket is left alone', () => {
    const s = new net.Socket();
    s.destroy();
    expect(() => new WriteBatch(s).hold()).not.toThrow();
    expect(() => new WriteBatch(undefined).hold()).not.toThrow();
  });

  it('the hub relays many frames that arrived together in one write to the target', async () => {
    const hub = new Hub({ log: silentLogger, token: 't', rateLimit: 100_000 });
    const clients: Client[] = [];
    try {
      await hub.attachPlugin(policy('alpha', [], ['beta.echo']), path.join(dir, 'alpha', 'hub.sock'));
      await hub.attachPlugin(policy('beta', ['echo']), path.join(dir, 'beta', 'hub.sock'));
      const a = await Client.open(`ws+unix://${path.join(dir, 'alpha', 'hub.sock')}:/v1`);
      const b = await Client.open(`ws+unix://${path.join(dir, 'beta', 'hub.sock')}:/v1`);
      clients.push(a, b);
      await a.hello([]);
      await b.hello(['echo']);
      // Count the hub's writes to its sockets (each one system call), not the clients'.
      const mine = new Set([a, b].map((c) => (c.ws as unknown as { _socket: net.Socket })._socket));
      const proto = net.Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown };
      const original = proto._writeGeneric;
      let hubWrites = 0;
      proto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
        if (!mine.has(this)) hubWrites++;
        return original.apply(this, args);
      };
      try {
        // Twenty requests in one write from the caller...
        const sock = (a.ws as unknown as { _socket: net.Socket })._socket;
        sock.cork();
        for (let i = 0; i < 20; i++) a.send({ type: 'request', to: ['beta'], method: 'echo', data: { n: i } });
        sock.uncork();
        const reqs = [];
        for (let i = 0; i < 20; i++) reqs.push(await b.next((m) => m.type === 'request'));
        // ...reach the target in one write of the hub (not twenty), in order.
        expect(reqs.map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
        expect(hubWrites).toBe(1);
      } finally {
        proto._writeGeneric = original;
      }
    } finally {
      for (const c of clients) c.ws.terminate();
      await hub.close();
    }
  });
});
