import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePluginImage, ensureRuntimeImage } from '../../src/images/build.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { go } from '../../src/runtimes/go.js';
import { node } from '../../src/runtimes/node.js';
import { python } from '../../src/runtimes/python.js';
import { rust } from '../../src/runtimes/rust.js';
import type { RuntimeImage } from '../../src/runtimes/runtime.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { Client } from '../unit/support/hub-client.js';
import { docker, instance, REPO, tempDir } from './support.js';

/**
 * The hub across nodes, over TCP between containers on a docker network this test makes:
 * the hub alone in a container (hub-tcp/hub-server.ts, the real Hub), and the four example
 * plugins, one per SDK, each in its hardened sandbox with a network interface, connecting
 * with LOGOMESH_HUB_URL and its own key file (as on Kubernetes). The hub is reached from this
 * process only through its published host-client port on 127.0.0.1.
 */
const PLUGINS: readonly [string, RuntimeImage][] = [
  ['thoughts', node],
  ['tokenizer', go],
  ['hasher', rust],
  ['analyzer', python],
];
const TOKEN = randomBytes(24).toString('base64url');
const CREDENTIAL_DIR = '/run/logomesh/credential';

let engine: Docker;
let network: Docker.Network;
let networkName: string;
let hub: Docker.Container;
let hubIp: string;
let hostPort: number;
const plugins: Docker.Container[] = [];
const keys: Record<string, Buffer> = {};
let dir: string;

/** The hub's stdout as JSON lines (its container has a TTY: one plain stream). */
async function hubLines(): Promise<Record<string, unknown>[]> {
  const text = await logText(hub);
  return text
    .split(/\r?\n/)
    .filter((l) => l.startsWith('hub {'))
    .map((l) => JSON.parse(l.slice(4)) as Record<string, unknown>);
}

/** A container's output so far (never all JSON: the engine's client would parse it). */
async function logText(c: Docker.Container): Promise<string> {
  return (await c.logs({ stdout: true, stderr: true, follow: false })).toString();
}

async function until<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; hub said:\n${JSON.stringify(await hubLines().catch(() => []))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A plugin's container as the controller would make it, on the test's network, with LOGOMESH_HUB_URL and its key file instead of a socket. */
async function pluginContainer(id: string, runtime: RuntimeImage, key: Buffer): Promise<Docker.Container> {
  const loaded = loadManifest(path.join(REPO, 'manifests', id));
  const compiled = runtime.compile ? { tag: (await ensurePluginImage(engine, runtime, loaded, { log: silentLogger })).tag, command: runtime.compile.command } : undefined;
  const spec = containerSpec({
    loaded,
    runtime,
    instance: instance(),
    ...(compiled ? { compiled } : {}),
    network: { network: networkName, env: { LOGOMESH_HUB_URL: `ws://${hubIp}:7070/v1`, LOGOMESH_HUB_CREDENTIAL: `${CREDENTIAL_DIR}/key` } },
  });
  // The key file, readable by the plugin's own user only, as the Secret's mount is on Kubernetes.
  const [uid, gid] = String(spec.User).split(':').map(Number) as [number, number];
  const keyDir = path.join(dir, `${id}-${randomBytes(3).toString('hex')}`);
  mkdirSync(keyDir);
  writeFileSync(path.join(keyDir, 'key'), key, { mode: 0o400 });
  chownSync(path.join(keyDir, 'key'), uid, gid);
  chmodSync(keyDir, 0o755);
  spec.HostConfig!.Mounts!.push({ Type: 'bind', Source: keyDir, Target: CREDENTIAL_DIR, ReadOnly: true });
  const c = await engine.createContainer(spec);
  await c.start();
  return c;
}

async function client(): Promise<Client> {
  return Client.open(`ws://127.0.0.1:${hostPort}/v1`, { Authorization: `Bearer ${TOKEN}` });
}

async function call(c: Client, to: string, method: string, data: unknown): Promise<Record<string, unknown>> {
  return c.reply(c.send({ type: 'request', to: [to], method, data, timeout: 10_000 }), 15_000);
}

describe('the hub across nodes: four SDKs over TCP between containers', () => {
  beforeAll(async () => {
    engine = await docker();
    for (const r of [node, python]) await ensureRuntimeImage(engine, r, { log: silentLogger });
    dir = tempDir('lm-hub-tcp-');
    networkName = `lm-hubtcp-${randomBytes(4).toString('hex')}`;
    network = await engine.createNetwork({ Name: networkName, Driver: 'bridge', Labels: ownerLabels('test', instance()) });
    for (const [id] of PLUGINS) keys[id] = randomBytes(32);
    const config = { token: TOKEN, plugins: PLUGINS.map(([id]) => ({ dir: `/repo/manifests/${id}`, key: keys[id]!.toString('hex') })) };
    hub = await engine.createContainer({
      Image: node.tag,
      Cmd: ['node', '--import', 'tsx', '/repo/test/integration/hub-tcp/hub-server.ts'],
      WorkingDir: '/repo',
      User: '65534:65534',
      Env: [`HUB_CONFIG=${JSON.stringify(config)}`, 'HOME=/tmp'],
      Tty: true,
      Labels: ownerLabels('test', instance()),
      ExposedPorts: { '7071/tcp': {} },
      HostConfig: {
        NetworkMode: networkName,
        PortBindings: { '7071/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
        Mounts: [{ Type: 'bind', Source: REPO, Target: '/repo', ReadOnly: true }],
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' },
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges:true'],
      },
    });
    await hub.start();
    await until(async () => (await hubLines()).some((l) => l.listening), 60_000, 'the hub listening');
    const info = await hub.inspect();
    hubIp = Object.values(info.NetworkSettings.Networks)[0]!.IPAddress;
    hostPort = Number(info.NetworkSettings.Ports['7071/tcp']![0]!.HostPort);
    for (const [id, runtime] of PLUGINS) plugins.push(await pluginContainer(id, runtime, keys[id]!));
    try {
      await until(async () => new Set((await hubLines()).map((l) => l.ready).filter(Boolean)).size === PLUGINS.length, 60_000, 'every plugin ready');
    } catch (err) {
      const outputs = await Promise.all(plugins.map(async (c) => `${(await c.inspect()).Config.Image}:\n${(await logText(c)).slice(-1500)}`));
      throw new Error(`${(err as Error).message}\nthe plugins said:\n${outputs.join('\n')}`);
    }
  }, 900_000);

  afterAll(async () => {
    for (const c of [...plugins, hub]) await c?.remove({ force: true, v: true }).catch(() => undefined);
    await network?.remove().catch(() => undefined);
  });

  it('routes calls between the four SDKs over TCP, each connection proven with its own key', async () => {
    const c = await client();
    try {
      // Python calls Node.js, Go and Rust through the hub.
      const r = await call(c, 'analyzer', 'analyze_results', {});
      expect(r, JSON.stringify(r)).toMatchObject({ success: true });
      const data = r.data as { thoughts: { tokens: number; digest: string }[] };
      expect(data.thoughts.length).toBeGreaterThan(0);
      expect(data.thoughts[0]!.digest).toMatch(/^[0-9a-f]{16,}$/);
      // The ACL is the hub's, whatever the transport: a method the manifest does not expose is refused.
      expect(await call(c, 'tokenizer', 'detokenize', {})).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    } finally {
      c.ws.terminate();
    }
    const audit = (await hubLines()).map((l) => l.audit as Record<string, unknown> | undefined).filter(Boolean);
    expect(audit).toContainEqual(expect.objectContaining({ who: 'analyzer', action: 'call', resource: 'tokenizer.tokenize', result: 'allowed' }));
    expect(audit).toContainEqual(expect.objectContaining({ who: 'analyzer', action: 'call', resource: 'hasher.digest', result: 'allowed' }));
  }, 60_000);

  it("a container with another plugin's id but not its key is refused (401, audited) and keeps trying; the real one is untouched", async () => {
    const intruder = await pluginContainer('hasher', rust, randomBytes(32));
    try {
      await until(
        async () => (await hubLines()).some((l) => (l.audit as Record<string, unknown> | undefined)?.reason === 'plugin handshake refused: bad signature'),
        30_000,
        'the refusal audited',
      );
      const refusal = (await hubLines()).map((l) => l.audit as Record<string, unknown>).find((a) => a?.reason === 'plugin handshake refused: bad signature');
      expect(refusal).toMatchObject({ who: 'hasher', action: 'connect', result: 'denied', code: 'LM_UNAUTHORIZED' });
      await until(async () => (await logText(intruder)).includes('LM_UNAUTHORIZED (401)'), 20_000, 'the intruder told why');
      const c = await client();
      try {
        expect(await call(c, 'hasher', 'digest', { text: 'x' })).toMatchObject({ success: true });
      } finally {
        c.ws.terminate();
      }
    } finally {
      await intruder.remove({ force: true, v: true });
    }
  }, 120_000);

  it('measures calls a second through one hub over TCP (host to plugin, and plugin to plugin)', async () => {
    const c = await client();
    try {
      const rate = async (to: string, method: string, data: unknown, ms: number, inFlight: number) => {
        let done = 0;
        const failed: string[] = [];
        const end = Date.now() + ms;
        const worker = async () => {
          while (Date.now() < end && done < 500_000) {
            const r = await call(c, to, method, data);
            if (r.success) done++;
            else failed.push(JSON.stringify(r.error));
          }
        };
        const t0 = Date.now();
        await Promise.all(Array.from({ length: inFlight }, worker));
        return { perSecond: Math.round((done * 1000) / (Date.now() - t0)), failed };
      };
      const direct = await rate('tokenizer', 'tokenize', { text: 'one two three' }, 3_000, 64);
      const fanout = await rate('analyzer', 'analyze_results', {}, 3_000, 16);
      console.log(`hub over TCP: host -> tokenizer, 64 in flight: ${direct.perSecond} calls/s; host -> analyzer.analyze_results, 16 in flight (each makes plugin-to-plugin calls to thoughts, tokenizer, hasher): ${fanout.perSecond} calls/s`);
      expect([...direct.failed, ...fanout.failed]).toEqual([]);
      expect(direct.perSecond).toBeGreaterThan(100);
    } finally {
      c.ws.terminate();
    }
  }, 60_000);

  it('the hub restarting (a controller Pod moved): every SDK reconnects with a fresh handshake, and calls work again', async () => {
    const before = (await hubLines()).filter((l) => l.ready).length;
    await hub.restart({ t: 5 });
    await until(async () => (await hubLines()).filter((l) => l.ready).length >= before + PLUGINS.length, 90_000, 'every plugin back');
    // A restarted container gets a new host port.
    hostPort = Number((await hub.inspect()).NetworkSettings.Ports['7071/tcp']![0]!.HostPort);
    const c = await client();
    try {
      expect(await call(c, 'analyzer', 'analyze_results', {})).toMatchObject({ success: true });
    } finally {
      c.ws.terminate();
    }
  }, 150_000);
});
