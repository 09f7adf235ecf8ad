import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ownerLabels } from '../../src/labels.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { python } from '../../src/runtimes/python.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import type { EgressAttachment } from '../../src/sandbox/egress.js';
import { pluginSeccompProfile } from '../../src/seccomp/profiles.js';
import { startHelperServer, type HelperServer } from './helper-server.js';
import { docker, instance, sleep, tempDir } from './support.js';

/**
 * A target: an HTTP server on 8080 and a TCP echo server on 7000 that prints `open <peer>`
 * and `closed <peer>` for each connection, so a test sees the upstream side of a tunnel end.
 */
export const TARGET = `
import http.server, socketserver, threading
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        print("open", self.client_address[0], flush=True)
        try:
            while True:
                data = self.request.recv(4096)
                if not data:
                    break
                self.request.sendall(data)
        except OSError:
            pass
        print("closed", self.client_address[0], flush=True)
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
threading.Thread(target=Server(("0.0.0.0", 7000), Echo).serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
`;

/** Poll `probe` every 20 ms until it returns a value, at most `ms`. */
export async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

/**
 * A test-made internal network holding target servers (TARGET) by name, started as helper
 * servers (testcontainers); an egress proxy joins the network.
 */
export class Targets {
  network?: Dockerode.Network;
  readonly servers: HelperServer[] = [];
  readonly ips: Record<string, string> = {};

  async start(suffix: string, names: readonly string[]): Promise<void> {
    const d = await docker();
    this.network = await d.createNetwork({ Name: `lm-${instance()}-${suffix}`, Driver: 'bridge', Internal: true, Labels: ownerLabels('test', instance()) });
    for (const name of names) {
      const server = await startHelperServer(['python3', '-u', '-c', TARGET], this.network.id, name);
      this.servers.push(server);
      this.ips[name] = server.ip;
    }
  }

  async remove(): Promise<void> {
    for (const s of this.servers) await s.stop().catch(() => undefined);
    if (this.network) await ignoreGone(this.network.remove());
  }
}

/** A Python plugin folder with network capabilities for `hosts`. */
export function networkPlugin(id: string, hosts: readonly string[], maxNetworkConnections: number, main: string, extraResources = ''): string {
  const dir = path.join(tempDir(`lm-${id}-`), id);
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    `id: ${id}
version: 1.0.0
runtime: python
entrypoint: main.py
capabilities:
  - id: web
    scope: network
    hosts: ${JSON.stringify(hosts)}
resources:
  maxNetworkConnections: ${maxNetworkConnections}
${extraResources}`,
  );
  writeFileSync(path.join(dir, 'main.py'), main);
  return dir;
}

/** A started plugin container; its stdout JSON lines collect in `lines`. */
export interface StartedPlugin {
  readonly container: Dockerode.Container;
  readonly lines: Record<string, unknown>[];
}

/** Start the plugin's container as the controller would, on its network. */
export async function startPlugin(loaded: LoadedManifest, network: EgressAttachment): Promise<StartedPlugin> {
  const d = await docker();
  const seccompProfile = pluginSeccompProfile(true, loaded.manifest.security.syscalls);
  const container = await d.createContainer(containerSpec({ loaded, runtime: python, instance: instance(), network, seccompProfile }));
  const lines: Record<string, unknown>[] = [];
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const out = new PassThrough();
  d.modem.demuxStream(stream, out, process.stderr);
  let buf = '';
  out.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  await container.start();
  return { container, lines };
}

/** Python for a plugin: the proxy's address and helpers to speak to it raw. */
export const PROXY_HELPERS = `
import json, os, socket, time
from urllib.parse import urlsplit
proxy = urlsplit(os.environ["HTTP_PROXY"])

def say(**kw):
    print(json.dumps(kw), flush=True)

def status_of(s):
    """The status code of the proxy's answer on s (0 if the connection ended first)."""
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0

def tunnel(host, port):
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n".encode())
    return s, status_of(s)

def exchange(raw, until=None, timeout=10):
    """Send raw bytes to the proxy; everything it sends back until it closes (or 'until' is seen)."""
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=timeout)
    s.sendall(raw)
    got = b""
    while until is None or until not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    return got.decode("latin-1")
`;
