import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import type { AuditEntry } from '../../src/permissions/audit-log.js';
import { python } from '../../src/runtimes/python.js';
import { Egress, type EgressDecision } from '../../src/sandbox/egress.js';
import { docker, instance, report, runCaptured, tempDir } from './support.js';

/**
 * The allow-list, end to end, with only test-made targets: an internal network holding two
 * HTTP servers, which the egress proxy joins. The plugin may reach one of them, through the
 * proxy, at most two connections at a time; nothing else.
 */
describe('network allow-list through the egress proxy', () => {
  let network: Dockerode.Network;
  const servers: Dockerode.Container[] = [];
  const ips: Record<string, string> = {};
  let egress: Egress;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const decisions: EgressDecision[] = [];
  const allowed = `lm-${instance()}-allowed`;
  const other = `lm-${instance()}-other`;

  beforeAll(async () => {
    const d = await docker();
    const labels = ownerLabels('test', instance());
    network = await d.createNetwork({ Name: `lm-${instance()}-targets`, Driver: 'bridge', Internal: true, Labels: labels });
    for (const name of [allowed, other]) {
      const c = await d.createContainer({
        name,
        Image: python.tag,
        Cmd: ['python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0'],
        Labels: labels,
        HostConfig: { NetworkMode: network.id, CapDrop: ['ALL'], ReadonlyRootfs: true, Init: true },
      });
      servers.push(c);
      await c.start();
      ips[name] = Object.values((await c.inspect()).NetworkSettings.Networks)[0]?.IPAddress ?? '';
    }
    egress = await Egress.start({ docker: d, instance: instance(), log: silentLogger, configDir: tempDir('lm-egress-test-'), audit: (e) => audit.push(e), networks: [network.id] });
    egress.onDecision((x) => decisions.push(x));
  });

  afterAll(async () => {
    await egress?.close();
    for (const s of servers) await ignoreGone(s.remove({ force: true }));
    await ignoreGone(network?.remove());
  });

  function probePlugin(): string {
    const dir = path.join(tempDir('lm-egress-probe-'), 'egress-probe');
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'plugin.yaml'),
      `id: egress-probe
version: 1.0.0
runtime: python
entrypoint: main.py
capabilities:
  - id: web
    scope: network
    hosts: ["${allowed}:8080"]
resources:
  maxNetworkConnections: 2
`,
    );
    writeFileSync(
      path.join(dir, 'main.py'),
      `import errno, json, os, socket, urllib.error, urllib.request, http.client
from urllib.parse import urlsplit
ALLOWED, OTHER = ${JSON.stringify(allowed)}, ${JSON.stringify(other)}
IPS = ${JSON.stringify(ips)}
proxy = urlsplit(os.environ["HTTP_PROXY"])
out = {"proxy": os.environ["HTTP_PROXY"], "interfaces": sorted(os.listdir("/sys/class/net"))}

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return type(e).__name__ + ": " + str(e)

def err(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, type(e).__name__) if isinstance(e.errno, int) and e.errno > 0 else type(e).__name__

def tunnel(host):
    c = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=10)
    c.set_tunnel(host, 8080)
    c.request("GET", "/")
    return c.getresponse().status

out["allowed"] = get(f"http://{ALLOWED}:8080/")
out["other"] = get(f"http://{OTHER}:8080/")
out["allowedWrongPort"] = get(f"http://{ALLOWED}:8081/")
out["tunnelAllowed"] = tunnel(ALLOWED)
out["tunnelOther"] = err(lambda: tunnel(OTHER))
out["directAllowed"] = err(lambda: socket.create_connection((IPS[ALLOWED], 8080), timeout=3).close())
out["directOther"] = err(lambda: socket.create_connection((IPS[OTHER], 8080), timeout=3).close())
out["dnsOutside"] = err(lambda: socket.getaddrinfo("logomesh-egress-probe.example.com", 443))
out["dnsTarget"] = err(lambda: socket.getaddrinfo(ALLOWED, 8080))

held, statuses = [], []
for i in range(3):
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    s.sendall(f"CONNECT {ALLOWED}:8080 HTTP/1.1\\r\\nHost: {ALLOWED}:8080\\r\\n\\r\\n".encode())
    statuses.append(int(s.recv(1024).split(b" ")[1]))
    held.append(s)
for s in held:
    s.close()
out["concurrent"] = statuses
print(json.dumps(out))
`,
    );
    return dir;
  }

  it('reaches the allowed host only, through the proxy, within its connection limit', async () => {
    const r = await runCaptured(probePlugin(), { egress });
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<Record<string, unknown>>(r.stdout);
    expect(p.interfaces).toEqual(['eth0', 'lo']);
    expect(p.allowed).toBe(200);
    expect(p.other).toBe(403);
    expect(p.allowedWrongPort).toBe(403);
    expect(p.tunnelAllowed).toBe(200);
    expect(p.tunnelOther).toBe('OSError'); // http.client: "Tunnel connection failed: 403"
    // The plugin's network is internal and holds only the proxy: no route to the targets.
    expect(p.directAllowed).not.toBe('ok');
    expect(p.directOther).not.toBe('ok');
    // No name resolution at all: not outside names, not container names.
    expect(p.dnsOutside).toBe('gaierror');
    expect(p.dnsTarget).toBe('gaierror');
    expect(p.concurrent).toEqual([200, 200, 429]);

    const mine = decisions.filter((x) => x.plugin === 'egress-probe');
    expect(mine).toContainEqual(expect.objectContaining({ host: allowed, port: 8080, result: 'allowed' }));
    expect(mine).toContainEqual(expect.objectContaining({ host: other, port: 8080, result: 'denied', reason: 'not-in-allow-list' }));
    expect(mine).toContainEqual(expect.objectContaining({ host: allowed, port: 8081, result: 'denied', reason: 'not-in-allow-list' }));
    expect(mine).toContainEqual(expect.objectContaining({ host: allowed, result: 'denied', reason: 'max-connections' }));
    expect(audit).toContainEqual(expect.objectContaining({ who: 'egress-probe', action: 'network', resource: `${other}:8080`, result: 'denied', code: 'LM_EGRESS_DENIED' }));
  });

  it('removes the plugin network after the run', async () => {
    const d = await docker();
    const nets = await d.listNetworks({ filters: JSON.stringify({ label: [`io.logomesh.instance=${instance()}`, 'io.logomesh.role=egress', 'io.logomesh.plugin=egress-probe'] }) });
    expect(nets).toEqual([]);
  });
});
