import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ownerLabels } from '../../src/labels.js';
import { python } from '../../src/runtimes/python.js';
import { startHelperServer, type HelperServer } from './helper-server.js';
import { copyFixture, docker, instance, report, runCaptured } from './support.js';

/**
 * The denial means something only if the target is reachable by a container that is on
 * its network. So: a test-made network, a TCP server on it, a control container that
 * connects, and then the plugin (network none) that must not.
 */
describe('network: none unless granted', () => {
  let network: Dockerode.Network;
  let server: HelperServer | undefined;
  let serverIp: string;

  beforeAll(async () => {
    const d = await docker();
    network = await d.createNetwork({ Name: `lm-${instance()}-net`, Driver: 'bridge', Internal: true, Labels: ownerLabels('test', instance()) });
    server = await startHelperServer(['python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0'], network.id);
    serverIp = server.ip;
    expect(serverIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  afterAll(async () => {
    await server?.stop();
    await ignoreGone(network?.remove());
  });

  async function controlConnect(): Promise<number> {
    const d = await docker();
    const probe = `import socket,time
for i in range(50):
    try:
        socket.create_connection(("${serverIp}", 8080), timeout=1).close(); raise SystemExit(0)
    except OSError: time.sleep(0.1)
raise SystemExit(1)`;
    const c = await d.createContainer({
      Image: python.tag,
      Cmd: ['python3', '-c', probe],
      Labels: ownerLabels('test', instance()),
      HostConfig: { NetworkMode: network.id, CapDrop: ['ALL'], Init: true },
    });
    try {
      await c.start();
      const { StatusCode } = (await c.wait()) as { StatusCode: number };
      return StatusCode;
    } finally {
      await ignoreGone(c.remove({ force: true }));
    }
  }

  it('a container on the target network reaches it, the plugin cannot connect at all', async () => {
    expect(await controlConnect()).toBe(0);

    const dir = copyFixture('net-probe');
    writeFileSync(path.join(dir, 'data', 'target'), `${serverIp} 8080`);
    const r = await runCaptured(dir);
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<{ tcp: string; udp: string; interfaces: string[] }>(r.stdout);
    expect(p.interfaces).toEqual(['lo']);
    // The no-network seccomp profile refuses IP sockets outright; without it, network mode
    // none would refuse the route (ENETUNREACH): test/security/network.test.ts checks both.
    expect(p.tcp).toBe('EAFNOSUPPORT');
    expect(p.udp).toBe('EAFNOSUPPORT');
  });
});
