import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { LABEL, ownerLabels } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { checkHostFirewall, FIREWALL_RULES_FILE, parseFirewallRules, runCommand } from '../../src/sandbox/egress/firewall.js';
import { Targets } from '../integration/egress-support.js';
import { docker, instance, REPO, sleep, tempDir } from '../integration/support.js';
import { HostListeners } from '../security/host-listeners.js';

/** Only where this suite manages the engine itself: root, local socket, our dockerd. */
function engineIsOurs(): boolean {
  if (process.getuid?.() !== 0 || process.env.DOCKER_HOST) return false;
  const ps = spawnSync('pgrep', ['-a', 'dockerd'], { encoding: 'utf8' });
  return ps.status === 0 && ps.stdout.includes('--live-restore');
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

const PORT = 20_000 + randomInt(20_000);

/** A Node.js plugin: `get(url)` through its proxy, and `probe(targets)`: TCP and UDP straight to each target. */
const PROBER = `import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { Plugin } from 'logomesh';
const plugin = new Plugin();
const proxy = new URL(process.env.HTTP_PROXY);
plugin.method('get', ({ url }) => new Promise((resolve) => {
  const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { Host: new URL(url).host } }, (res) => { res.resume(); resolve(res.statusCode); });
  req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve(e.message));
  req.end();
}));
const tcp = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port, timeout: 3000 });
  s.on('connect', () => { s.destroy(); resolve('connected'); });
  s.on('timeout', () => { s.destroy(); resolve('timeout'); });
  s.on('error', (e) => resolve(e.code));
});
const udp = (host, port) => new Promise((resolve) => {
  const u = dgram.createSocket('udp4');
  u.send('probe', port, host, (e) => { u.close(); resolve(e ? e.code : 'sent'); });
});
// A CONNECT tunnel held open, and whether it still is.
let held;
plugin.method('hold', ({ host, port }) => new Promise((resolve) => {
  const s = net.connect({ host: proxy.hostname, port: Number(proxy.port) });
  s.once('connect', () => s.write(\`CONNECT \${host}:\${port} HTTP/1.1\\r\\nHost: \${host}:\${port}\\r\\n\\r\\n\`));
  let head = '';
  const onData = (d) => {
    head += d;
    if (!head.includes('\\r\\n\\r\\n')) return;
    s.off('data', onData);
    held = { closed: false };
    s.on('close', () => { held.closed = true; });
    s.on('error', () => {});
    resolve(Number(head.split(' ')[1]));
  };
  s.on('data', onData);
  s.on('error', (e) => resolve(e.code));
}));
plugin.method('held', () => (held ? (held.closed ? 'closed' : 'open') : 'none'));
plugin.method('probe', async ({ targets, port }) => {
  const out = {};
  await Promise.all(Object.entries(targets).map(async ([name, ip]) => { out[name] = { tcp: await tcp(ip, port), udp: await udp(ip, port) }; }));
  out.self = await new Promise((resolve) => { const u = dgram.createSocket('udp4'); u.connect(9, proxy.hostname, () => { resolve(u.address().address); u.close(); }); });
  return out;
});
await plugin.run();
`;

/**
 * Egress across a restart of the Docker engine (live-restore: the plugin and its proxy keep
 * running): the plugin network still has no host address, the host firewall rules are still
 * there, nothing from the plugin reaches the host or arrives anywhere, and the proxy still
 * serves and its decisions still reach the audit trail. Runs alone and last (vitest project
 * `engine`), like engine-restart.test.ts.
 */
describe.runIf(engineIsOurs())('egress across an engine restart', () => {
  it('holds the plugin off the host before and after, and the proxy goes on serving and auditing', async () => {
    const d = await docker();
    const inst = `${instance()}-egress-engine`;
    const targets = new Targets();
    const web = `lm-${instance()}-engine-web`;
    const listeners = new HostListeners(PORT);
    const hostBridge = await d.createNetwork({ Name: `lm-${instance()}-engine-hostbr`, Driver: 'bridge', Labels: ownerLabels('test', instance()) });
    const root = tempDir('lm-egress-engine-');
    mkdirSync(path.join(root, 'prober'));
    writeFileSync(path.join(root, 'prober', 'main.mjs'), PROBER);
    writeFileSync(
      path.join(root, 'prober', 'plugin.yaml'),
      `id: prober\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [get, probe, hold, held]\ncapabilities:\n  - { id: web, scope: network, hosts: ["${web}:8080", "${web}:7000"] }\nresources: { maxNetworkConnections: 4 }\n`,
    );
    let host: Controller | undefined;
    try {
      await targets.start('engine-targets', [web]);
      const hostGateway = ((await hostBridge.inspect()) as { IPAM: { Config: { Gateway: string }[] } }).IPAM.Config[0]!.Gateway;
      await listeners.listen(hostGateway);
      host = await Controller.create({ log: silentLogger, home: resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst }), docker: d, engineCheckMs: 200, egressNetworks: [targets.network!.id] });
      host.loadDirectory(root);
      await host.startAll();
      const h = host;
      const [net] = await d.listNetworks({ filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.plugin}=prober`] }) });
      const info = (await d.getNetwork(net!.Id).inspect()) as { Options: Record<string, string>; IPAM: { Config: { Gateway: string }[] } };
      const bridge = info.Options['com.docker.network.bridge.name']!;
      const ownGateway = info.IPAM.Config[0]!.Gateway;
      const rules = parseFirewallRules(readFileSync(FIREWALL_RULES_FILE, 'utf8'));

      const check = async (when: string) => {
        expect(networkInterfaces()[bridge]?.filter((a) => a.family === 'IPv4') ?? [], `${when}: host addresses on ${bridge}`).toEqual([]);
        await expect(listeners.listen(ownGateway), `${when}: the plugin's gateway address is nobody's`).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
        expect(await checkHostFirewall(rules, runCommand), `${when}: host firewall rules`).toEqual({ status: 'in-place' });
        const p = (await h.call('prober', 'probe', { targets: { ownGateway, hostGateway }, port: PORT }, 30_000)) as Record<string, { tcp: string }> & { self: string };
        expect(p.ownGateway?.tcp, when).not.toBe('connected');
        expect(p.hostGateway?.tcp, when).not.toBe('connected');
        expect(listeners.from(p.self), `${when}: arrivals from the plugin`).toEqual([]);
        expect(await h.call('prober', 'get', { url: `http://${web}:8080/` }, 30_000), when).toBe(200);
      };

      await check('before the restart');
      const proxyBefore = (await d.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.role}=egress`, `${LABEL.plugin}=prober`] }) }))[0]?.Id;

      // A tunnel open across the restart, to a host revoked while the engine is away.
      expect(await h.call('prober', 'hold', { host: web, port: 7000 }, 30_000)).toBe(200);
      expect(await h.call('prober', 'held', {}, 10_000)).toBe('open');

      execFileSync('pkill', ['-TERM', '-x', 'dockerd']);
      await until('the controller to notice', () => !h.engineStatus().up, 20_000);
      // The proxy cannot be signalled now: the file changes, the open tunnel is cut once the engine is back.
      expect(await h.revokeHost('prober', `${web}:7000`)).toBe(true);
      execFileSync('bash', [path.join(REPO, 'src/provision/provision.sh'), 'engine'], { stdio: 'ignore', timeout: 90_000 });
      await until('the controller to see the engine again', () => h.engineStatus().up, 30_000);
      const back = Date.now();

      await check('after the restart');
      // The same proxy (live-restore), followed again: its decisions after the restart are audited.
      const proxyAfter = (await d.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.role}=egress`, `${LABEL.plugin}=prober`] }) }))[0]?.Id;
      expect(proxyAfter).toBe(proxyBefore);
      await until(
        'the allowed request after the restart in the audit trail',
        () => readAudit(h.home.auditFile).some((e) => e.who === 'prober' && e.action === 'network' && e.result === 'allowed' && e.time >= back),
        10_000,
      );
      await until('the tunnel to the host revoked meanwhile to be cut', async () => (await h.call('prober', 'held', {}, 10_000)) === 'closed', 15_000);
      expect(readAudit(h.home.auditFile)).toContainEqual(expect.objectContaining({ who: 'prober', action: 'network', resource: `${web}:7000`, result: 'cut', reason: 'revoked' }));
      expect(h.status('prober')).toMatchObject({ state: 'ready', restarts: 0 });
    } finally {
      await host?.close();
      await listeners.close();
      await targets.remove();
      await ignoreGone(hostBridge.remove());
    }
  });
});
