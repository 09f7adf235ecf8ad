import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { python } from '../../src/runtimes/python.js';
import { Egress, type EgressAttachment } from '../../src/sandbox/egress.js';
import { checkHostFirewall, FIREWALL_RULES_FILE, parseFirewallRules, runCommand } from '../../src/sandbox/egress/firewall.js';
import { PLUGIN_BRIDGE_PREFIX } from '../../src/sandbox/egress/plugin-network.js';
import { networkPlugin, waitFor } from '../integration/egress-support.js';
import { docker, instance, report, runCaptured, tempDir } from '../integration/support.js';
import { HostListeners } from './host-listeners.js';

const PORT = 20_000 + randomInt(20_000);

/**
 * The probe: TCP (3 s) and UDP to each target at once, its own proxy as the control, and what
 * routes and IPv6 addresses it has. Targets by name; `ownGateway` is its default route's.
 */
const PROBE = `
import errno, json, os, socket, struct, sys, threading
PORT = ${PORT}
targets = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.loads(os.environ.get("TARGETS", "{}"))
routes = [l.split() for l in open("/proc/net/route").read().splitlines()[1:]]
gateways = [socket.inet_ntoa(struct.pack("<L", int(r[2], 16))) for r in routes if r[1] == "00000000"]
if gateways:
    targets["ownGateway"] = gateways[0]

def attempt(fn):
    try:
        fn()
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__

def udp(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for _ in range(3):
            u.sendto(b"probe", (ip, PORT))

out = {}
def one(name, ip):
    out[name] = {"tcp": attempt(lambda: socket.create_connection((ip, PORT), timeout=3).close()), "udp": attempt(lambda: udp(ip))}
threads = [threading.Thread(target=one, args=kv) for kv in targets.items()]
[t.start() for t in threads]
[t.join() for t in threads]
proxy = os.environ.get("HTTP_PROXY", "")
if proxy:
    host, port = proxy.rsplit("/", 1)[-1].rsplit(":", 1)
    out["ownProxy"] = attempt(lambda: socket.create_connection((host, int(port)), timeout=3).close())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as me:
        me.connect((host, 9))
        out["self"] = me.getsockname()[0]
out["routes"] = [[r[0], r[1], r[2]] for r in routes]
out["ipv6"] = open("/proc/net/if_inet6").read().split() if os.path.exists("/proc/net/if_inet6") else []
out["ipv6Connect"] = attempt(lambda: socket.create_connection(("fe80::1%eth0", PORT), timeout=3).close())
print(json.dumps(out), flush=True)
`;

/** A plain container (not a plugin) running `script` on `network`; its output and address. */
async function plain(network: string, script: string, args: string[] = []): Promise<{ out: string; ip: string; code: number }> {
  const d = await docker();
  const c = await d.createContainer({
    Image: python.tag,
    Cmd: ['python3', '-c', script, ...args],
    Labels: ownerLabels('test', instance()),
    HostConfig: { NetworkMode: network, CapDrop: ['ALL'], ReadonlyRootfs: true, Init: true },
  });
  try {
    await c.start();
    const ip = Object.values((await c.inspect()).NetworkSettings.Networks)[0]?.IPAddress ?? '';
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    return { out: demux(await c.logs({ stdout: true, stderr: true })), ip, code: StatusCode };
  } finally {
    await ignoreGone(c.remove({ force: true }));
  }
}

/** The text of a non-TTY container's log, without the engine's 8-byte frame headers. */
function demux(buf: Buffer): string {
  let text = '';
  for (let i = 0; i + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(i + 4);
    text += buf.subarray(i + 8, i + 8 + size).toString();
    i += 8 + size;
  }
  return text;
}

const LISTENER = `
import socket, threading, sys
PORT = ${PORT}
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", PORT))
    while True:
        _, p = u.recvfrom(100)
        print("udp", p[0], flush=True)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", PORT))
s.listen()
print("ready", flush=True)
while True:
    c, p = s.accept()
    print("tcp", p[0], flush=True)
    c.close()
`;

/**
 * A networked plugin reaches its own proxy, and nothing else: not the host at any address
 * (its own network's gateway address is nobody's; the host's addresses on the test's other
 * bridges have listeners), not another plugin's network (a listener there, and that plugin's
 * proxy). Each layer is also shown alone: the network without a host address, and the host
 * firewall rules on a network that has one.
 */
describe('a networked plugin reaches nothing but its proxy', () => {
  const listeners = new HostListeners(PORT);
  const networks: Dockerode.Network[] = [];
  const gateways: Record<'hostBridge' | 'lmpBridge', string> = { hostBridge: '', lmpBridge: '' };
  let hostBridgeNet = '';
  let lmpNet = '';
  let egress: Egress;
  let other: EgressAttachment;
  let otherListener: Dockerode.Container;
  let otherListenerIp = '';

  beforeAll(async () => {
    const d = await docker();
    const labels = ownerLabels('test', instance());
    // A bridge with a way out: the host's address on it is its gateway.
    const hostBridge = await d.createNetwork({ Name: `lm-${instance()}-reach-host`, Driver: 'bridge', Labels: labels });
    // A bridge named like plugin networks but with a host address: only the firewall rules stand.
    const lmp = await d.createNetwork({
      Name: `lm-${instance()}-reach-lmp`,
      Driver: 'bridge',
      Internal: true,
      Labels: labels,
      Options: { 'com.docker.network.bridge.name': `${PLUGIN_BRIDGE_PREFIX}${randomBytes(6).toString('hex').slice(0, 11)}` },
    });
    networks.push(hostBridge, lmp);
    hostBridgeNet = hostBridge.id;
    lmpNet = lmp.id;
    for (const [key, n] of [['hostBridge', hostBridge], ['lmpBridge', lmp]] as const) {
      const info = (await n.inspect()) as { IPAM: { Config: { Gateway: string }[] } };
      gateways[key] = info.IPAM.Config[0]!.Gateway;
      await listeners.listen(gateways[key]);
    }
    egress = await Egress.start({ docker: d, instance: instance(), log: silentLogger, configDir: tempDir('lm-egress-reach-') });
    // Another plugin, with a listener on its network beside it.
    other = await egress.attach('reach-other', loadManifest(networkPlugin('reach-other', ['api.example.com:443'], 2, 'print()\n')).manifest);
    otherListener = await d.createContainer({ Image: python.tag, Cmd: ['python3', '-u', '-c', LISTENER], Labels: labels, HostConfig: { NetworkMode: other.network, CapDrop: ['ALL'], ReadonlyRootfs: true, Init: true } });
    await otherListener.start();
    otherListenerIp = Object.values((await otherListener.inspect()).NetworkSettings.Networks)[0]?.IPAddress ?? '';
    await waitFor('the listener', 20_000, async () => (demux(await otherListener.logs({ stdout: true })).includes('ready') ? true : undefined));
  });

  afterAll(async () => {
    await listeners.close();
    if (otherListener) await ignoreGone(otherListener.remove({ force: true }));
    await egress?.close();
    for (const n of networks) await ignoreGone(n.remove());
  });

  const arrivedAtOther = async () =>
    demux(await otherListener.logs({ stdout: true }))
      .split('\n')
      .filter((l) => /^(tcp|udp) /.test(l));

  it('the listeners hear a container that may reach them (the control)', async () => {
    const r = await plain(hostBridgeNet, PROBE, [JSON.stringify({ hostBridge: gateways.hostBridge })]);
    expect(r.code, r.out).toBe(0);
    expect(report<Record<string, { tcp: string }>>(r.out).hostBridge?.tcp).toBe('connected');
    await waitFor('the control datagrams', 5_000, () => (listeners.from(r.ip).some((a) => a.proto === 'udp') ? true : undefined));
    expect(listeners.from(r.ip).map((a) => a.proto)).toContain('tcp');

    const onOther = await plain(other.network, PROBE, [JSON.stringify({ listener: otherListenerIp })]);
    expect(report<Record<string, { tcp: string }>>(onOther.out).listener?.tcp).toBe('connected');
    await waitFor('the control on the other plugin network', 5_000, async () => ((await arrivedAtOther()).some((l) => l.startsWith('udp')) ? true : undefined));
  });

  it('the plugin reaches its proxy, and no address of the host, nor the other plugin, over TCP or UDP; nothing arrives', async () => {
    const targets = { ...gateways, otherListener: otherListenerIp, otherProxy: other.dns[0]! };
    let bridge = '';
    let held: string[] | undefined;
    let ownGatewayBind = '';
    const main = `import os\nos.environ["TARGETS"] = ${JSON.stringify(JSON.stringify(targets))}\n${PROBE}`;
    const r = await runCaptured(networkPlugin('reach-probe', ['api.example.com:443'], 2, main), {
      egress,
      onCreated: async (container) => {
        const d = await docker();
        const info = await d.getContainer(container.id).inspect();
        const name = Object.keys(info.NetworkSettings.Networks)[0]!;
        const n = (await d.getNetwork(name).inspect()) as { Options: Record<string, string>; IPAM: { Config: { Gateway: string }[] } };
        bridge = n.Options['com.docker.network.bridge.name'] ?? '';
        held = networkInterfaces()[bridge]?.filter((a) => a.family === 'IPv4').map((a) => a.address) ?? [];
        // The plugin's own gateway address: the host does not hold it, so nothing can listen there.
        ownGatewayBind = await listeners.listen(n.IPAM.Config[0]!.Gateway).then(
          () => 'bound',
          (e: NodeJS.ErrnoException) => e.code ?? 'error',
        );
      },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<Record<string, { tcp: string; udp: string }> & { ownProxy: string; self: string; ipv6: string[]; ipv6Connect: string }>(r.stdout);
    expect(bridge).toMatch(new RegExp(`^${PLUGIN_BRIDGE_PREFIX}[0-9a-f]{11}$`));
    expect(held).toEqual([]);
    expect(ownGatewayBind).toBe('EADDRNOTAVAIL');
    expect(p.ownProxy).toBe('connected');
    for (const name of ['ownGateway', 'hostBridge', 'lmpBridge', 'otherListener', 'otherProxy']) expect(p[name]?.tcp, name).not.toBe('connected');
    expect(p.ipv6).toEqual([]);
    expect(p.ipv6Connect).not.toBe('connected');
    // Nothing from the plugin reached any listener (the control's datagrams did, above).
    expect(p.self).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(listeners.from(p.self)).toEqual([]);
    expect((await arrivedAtOther()).filter((l) => l.endsWith(` ${p.self}`))).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)('on a plugin-named bridge that has a host address, the host firewall rules alone drop everything to the host', async () => {
    const rules = parseFirewallRules(readFileSync(FIREWALL_RULES_FILE, 'utf8'));
    expect(await checkHostFirewall(rules, runCommand), 'run src/provision/provision.sh firewall as root').toEqual({ status: 'in-place' });
    const r = await plain(lmpNet, PROBE, [JSON.stringify(gateways)]);
    expect(r.code, r.out).toBe(0);
    const p = report<Record<string, { tcp: string }>>(r.out);
    // The gateway is the host's own address on this bridge, and the route to it exists: dropped, not refused.
    expect(p.ownGateway?.tcp).toBe('timeout');
    expect(p.lmpBridge?.tcp).toBe('timeout');
    expect(p.hostBridge?.tcp).toBe('timeout');
    expect(listeners.from(r.ip)).toEqual([]);
  });
});
