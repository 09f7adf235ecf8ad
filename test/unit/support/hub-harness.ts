import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { Hub } from '../../../src/hub/hub.js';
import { Client } from './hub-client.js';

/** A hub per test, in a folder of its own: the test's plugin sockets and its clients. */
export interface HubHarness {
  /** Plugin `id`'s hub socket in this test's folder. */
  sock(id: string): string;
  /** A client on plugin `id`'s socket that said hello serving `methods`; closed after the test. */
  connect(id: string, methods?: string[]): Promise<Client>;
  /** A client the test opened itself, closed after the test. */
  track(c: Client): Client;
}

/**
 * Before each test: a temporary folder (named from `prefix`) and the hub `setup` makes with
 * its plugins attached under `sock(id)`. After each: every tracked client cut off, the hub
 * closed, the folder removed.
 */
export function hubHarness(prefix: string, setup: (sock: (id: string) => string) => Promise<Hub> | Hub): HubHarness {
  let dir = '';
  let hub: Hub | undefined;
  const clients: Client[] = [];
  const sock = (id: string): string => path.join(dir, id, 'hub.sock');
  const track = (c: Client): Client => {
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    hub = await setup(sock);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub?.close();
    hub = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  return {
    sock,
    track,
    connect: async (id, methods = []) => {
      const c = track(await Client.open(`ws+unix://${sock(id)}:/v1`));
      await c.hello(methods);
      return c;
    },
  };
}
