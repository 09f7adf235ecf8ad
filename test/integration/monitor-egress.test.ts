import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { VIOLATION_TOPIC } from '../../src/controller/violation-routing.js';
import { silentLogger } from '../../src/log.js';
import type { ResourceViolation } from '../../src/monitor/index.js';
import { Targets, waitFor } from './egress-support.js';
import { instance, sleep, tempDir } from './support.js';

/** A networked plugin that opens CONNECT tunnels through its proxy and holds them. */
const TUNNELS = `
import os, socket
from urllib.parse import urlsplit
from logomesh import Plugin

plugin = Plugin()
proxy = urlsplit(os.environ["HTTP_PROXY"])
held = []

@plugin.method
def open_tunnels(target, n):
    """Open n tunnels to target; returns the proxy's status for each (200, or 429 over the budget)."""
    codes = []
    for _ in range(n):
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
        s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
        head = b""
        while b"\\r\\n\\r\\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        code = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
        codes.append(code)
        if code == 200:
            held.append(s)
        else:
            s.close()
    return codes

@plugin.method
def close_tunnels():
    for s in held:
        s.close()
    held.clear()
    return 0

plugin.run()
`;

/**
 * Connections come from the egress proxy's own count: a plugin's open tunnels show in its
 * usage, and reaching maxNetworkConnections is one connection-limit violation.
 */
describe('resource monitor: connections from the egress proxy', () => {
  const targets = new Targets();
  const web = `lm-${instance()}-mon-web`;
  let host: Controller;
  const seen: ResourceViolation[] = [];

  beforeAll(async () => {
    await targets.start('mon-targets', [web]);
    const root = tempDir('lm-monitor-egress-');
    const dir = path.join(root, 'tunneler');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'main.py'), TUNNELS);
    writeFileSync(
      path.join(dir, 'plugin.yaml'),
      ['id: tunneler', 'version: 1.0.0', 'runtime: python', 'entrypoint: main.py', 'capabilities:', `  - { id: web, scope: network, hosts: ["${web}:7000"] }`, 'resources: { maxNetworkConnections: 3 }', 'coordination:', '  exposesMethods: [open_tunnels, close_tunnels]'].join('\n'),
    );
    host = await Controller.create({
      log: silentLogger,
      home: resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-mon-egress` }),
      stopGraceMs: 2_000,
      egressNetworks: [targets.network!.id],
      monitoring: { pollMs: 200 },
    });
    host.on(`${VIOLATION_TOPIC}.*`, (v) => seen.push(v as ResourceViolation));
    host.loadDirectory(root);
    await host.startAll();
  }, 180_000);

  afterAll(async () => {
    await host?.close();
    await targets.remove();
  }, 60_000);

  const connections = () => host.usage('tunneler').io.networkConnections;

  it('counts the open tunnels, reports the limit once, and counts them down when they close', async () => {
    expect(connections()).toBe(0);
    expect(await host.call('tunneler', 'open_tunnels', { target: `${web}:7000`, n: 2 }, 30_000)).toEqual([200, 200]);
    await waitFor('2 connections', 10_000, () => (connections() === 2 ? true : undefined));
    expect(seen.filter((v) => v.kind === 'connection-limit')).toEqual([]);
    // The third reaches maxNetworkConnections; a fourth is refused by the proxy.
    expect(await host.call('tunneler', 'open_tunnels', { target: `${web}:7000`, n: 2 }, 30_000)).toEqual([200, 429]);
    await waitFor('the connection-limit violation', 10_000, () => (seen.some((v) => v.kind === 'connection-limit') ? true : undefined));
    await sleep(1500);
    const hits = seen.filter((v) => v.kind === 'connection-limit');
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ plugin: 'tunneler', value: 3, limit: 3, unit: 'count', action: 'none' });
    expect(connections()).toBe(3);
    await host.call('tunneler', 'close_tunnels', {}, 30_000);
    await waitFor('0 connections', 10_000, () => (connections() === 0 ? true : undefined));
  });
});
