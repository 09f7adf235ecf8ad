import { appendFileSync, chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { MountSettings } from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ensurePluginImage, ensureRuntimeImage } from '../../src/images/build.js';
import { isLogoMeshError } from '../../src/errors.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { rust } from '../../src/runtimes/rust.js';
import { PLUGIN_USER } from '../../src/runtimes/runtime.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { PluginContainer } from '../../src/sandbox/plugin-container.js';
import { describeProbe } from './sdk-probe.js';
import { docker, instance, REPO, tempDir } from './support.js';

const BUILDER = rust.images[0]!.tag;
const HASHER = path.join(REPO, 'manifests', 'hasher');

/**
 * A copy of the hasher example under another plugin id: plugin images are kept per plugin
 * id (a new build removes the older ones), so this file's builds never replace, or get
 * replaced by, an image of the example that something else is building at the same time.
 */
function hasherCopy(id: string): string {
  const dir = path.join(tempDir('lm-rust-'), id);
  cpSync(HASHER, dir, { recursive: true });
  const manifest = path.join(dir, 'plugin.yaml');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(/^id: hasher$/m, `id: ${id}`));
  return dir;
}

/** Run a command in a fresh container of the builder image: non-root, no network. */
async function inBuilder(cmd: string[], opts: { workdir?: string; mounts?: MountSettings[] } = {}): Promise<{ exitCode: number; output: string }> {
  const chunks: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (c: Buffer) => chunks.push(c));
  const c = await PluginContainer.create(
    await docker(),
    {
      Image: BUILDER,
      Cmd: cmd,
      User: PLUGIN_USER,
      ...(opts.workdir ? { WorkingDir: opts.workdir } : {}),
      Labels: ownerLabels('test', instance()),
      HostConfig: {
        NetworkMode: 'none',
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges:true'],
        Init: true,
        Mounts: opts.mounts ?? [],
      },
    },
    silentLogger,
  );
  try {
    const drained = await c.attach(out, out);
    await c.start();
    const exitCode = await c.wait();
    await drained();
    return { exitCode, output: Buffer.concat(chunks).toString() };
  } finally {
    await c.remove();
  }
}

type Msg = Record<string, unknown> & { type?: string; id?: string };

/**
 * The hub's side of one plugin connection, with the `ws` package on a Unix socket in a
 * folder that gets bind-mounted into the plugin's container at /run/logomesh.
 */
async function nodeHub(dir: string) {
  const socketPath = path.join(dir, 'hub.sock');
  const server = createServer();
  const wss = new WebSocketServer({ server, path: '/v1' });
  const inbox: Msg[] = [];
  const events = { pongs: 0, closeCode: undefined as number | undefined, host: '' };
  let wake: () => void = () => undefined;
  const connected = new Promise<WebSocket>((resolve) => {
    wss.on('connection', (ws, req) => {
      events.host = req.headers.host ?? '';
      ws.on('message', (data: Buffer) => {
        inbox.push(JSON.parse(data.toString()) as Msg);
        wake();
      });
      ws.on('pong', () => {
        events.pongs++;
        wake();
      });
      ws.on('close', (code) => {
        events.closeCode = code;
        wake();
      });
      resolve(ws);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  // The plugin runs as uid 10001: it needs to reach and write the socket.
  chmodSync(dir, 0o755);
  chmodSync(socketPath, 0o666);

  async function until<T>(what: string, check: () => T | undefined, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  return {
    connected,
    events,
    until,
    next(pred: (m: Msg) => boolean, what: string): Promise<Msg> {
      return until(what, () => {
        const i = inbox.findIndex(pred);
        return i < 0 ? undefined : inbox.splice(i, 1)[0];
      });
    },
    close(): Promise<void> {
      for (const c of wss.clients) c.terminate();
      wss.close();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Start the hasher's compiled image in its sandbox, talking to a hub of this test's. */
async function startHasher(pluginDir: string, tag: string) {
  const loaded = loadManifest(pluginDir);
  const hubDir = tempDir('lm-rust-hub-');
  const hub = await nodeHub(hubDir);
  const spec = containerSpec({
    loaded,
    runtime: rust,
    instance: instance(),
    compiled: { tag, command: rust.compile!.command },
    env: { LOGOMESH_HUB_SOCKET: '/run/logomesh/hub.sock' },
  });
  spec.HostConfig!.Mounts!.push({ Type: 'bind', Source: hubDir, Target: '/run/logomesh', ReadOnly: false });
  const container = await PluginContainer.create(await docker(), spec, silentLogger);
  const chunks: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (c: Buffer) => chunks.push(c));
  await container.attach(out, out);
  await container.start();
  const output = () => Buffer.concat(chunks).toString();
  const ws = await Promise.race([
    hub.connected,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the plugin did not connect; its output:\n${output()}`)), 15_000)),
  ]);
  let seq = 0;
  const send = (m: Msg) => ws.send(JSON.stringify(m));
  async function call(method: string, data: unknown): Promise<Msg> {
    const id = `q${++seq}`;
    send({ type: 'request', id, from: 'host', to: ['hasher'], method, data, timeout: 5000, timestamp: Date.now() });
    return hub.next((m) => m.type === 'response' && m.correlationId === id, `the response to ${method}`);
  }
  const cleanup = async () => {
    await container.remove();
    await hub.close();
  };
  return { hub, ws, send, call, container, output, cleanup };
}

describe('the Rust SDK and runtime', () => {
  let pluginDir = '';
  let pluginTag = '';
  let pluginBuildMs = 0;

  beforeAll(async () => {
    const d = await docker();
    await ensureRuntimeImage(d, rust, { log: silentLogger, progress: process.stderr });
    pluginDir = hasherCopy('hasher-sdk-test');
    const t = Date.now();
    pluginTag = (await ensurePluginImage(d, rust, loadManifest(pluginDir), { log: silentLogger })).tag;
    pluginBuildMs = Date.now() - t;
  }, 900_000);

  it('passes its own tests (fake hub in Rust) inside the builder image, as a non-root user without network', async () => {
    const r = await inBuilder(['cargo', 'test', '--offline'], { workdir: '/opt/logomesh/sdk' });
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).toMatch(/test result: ok\. [1-9]\d* passed; 0 failed/);
    expect(r.output).not.toMatch(/Compiling (serde|serde_json) /);
  });

  it('runs a plugin’s own tests with the SDK (logomesh-test-plugin), reusing the compiled crates', async () => {
    const r = await inBuilder(['logomesh-test-plugin', 'main.rs'], { mounts: [{ Type: 'bind', Source: HASHER, Target: '/plugin', ReadOnly: true }] });
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).toContain('tests::digest_through_a_fake_hub ... ok');
    expect(r.output).not.toMatch(/Compiling (serde|serde_json|logomesh) /);
  });

  it('compiles the hasher into its own small image', async () => {
    const img = await (await docker()).getImage(pluginTag).inspect();
    // bookworm-slim plus one stripped binary.
    const runtime = await (await docker()).getImage(rust.tag).inspect();
    expect(img.Size - runtime.Size).toBeLessThan(5 * 1024 * 1024);
    expect(pluginBuildMs).toBeGreaterThanOrEqual(0);
  });

  it('the hasher serves digest in its sandbox, answers pings, and stops on shutdown with 1000 and exit 0', async () => {
    const p = await startHasher(pluginDir, pluginTag);
    try {
      expect(p.hub.events.host).toBe('logomesh');
      const hello = await p.hub.next((m) => m.type === 'hello', 'hello');
      expect(hello).toMatchObject({ protocol: 1, methods: ['digest'], sdk: 'rust/0.1.0' });
      p.send({ type: 'response', id: 'h1', correlationId: hello.id, success: true, data: { plugin: 'hasher', protocol: 1 } });

      const digest = async (data: unknown) => (await p.call('digest', data)) as { success: boolean; data?: { digest: string }; error?: { code: string } };
      expect((await digest({ text: '' })).data).toEqual({ digest: 'cbf29ce484222325' });
      expect((await digest({ text: 'a' })).data).toEqual({ digest: 'af63dc4c8601ec8c' });
      expect((await digest({ text: 'foobar' })).data).toEqual({ digest: '85944171f73967e8' });
      expect((await digest({ text: 'héllo wörld' })).data?.digest).toMatch(/^[0-9a-f]{16}$/);
      for (const bad of [{}, { text: 42 }, { text: null }, 'foobar', null]) {
        const r = await digest(bad);
        expect(r.success, JSON.stringify(bad)).toBe(false);
        expect(r.error?.code).toBe('LM_INVALID_ARGUMENT');
      }
      expect(((await p.call('nope', {})) as { error?: { code: string } }).error?.code).toBe('LM_METHOD_NOT_FOUND');

      // A 10 KB request nested 5000 deep, in the plugin's real sandbox and memory limit: answered
      // with LM_PROTOCOL (issue 9), and the plugin goes on serving.
      p.ws.send(`{"type":"request","id":"deep","from":"host","to":["hasher"],"method":"digest","timeout":5000,"data":${'['.repeat(5000)}${']'.repeat(5000)}}`);
      expect(await p.hub.next((m) => m.correlationId === 'deep', 'the answer to the deep request')).toMatchObject({ success: false, error: { code: 'LM_PROTOCOL' } });
      expect((await digest({ text: 'a' })).data).toEqual({ digest: 'af63dc4c8601ec8c' });

      p.ws.ping();
      await p.hub.until('a pong', () => (p.hub.events.pongs > 0 ? true : undefined));

      // Sequential round trips through this (Node) hub, to see the SDK's share is small.
      const times: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t = process.hrtime.bigint();
        await digest({ text: `n${i}` });
        times.push(Number(process.hrtime.bigint() - t) / 1000);
      }
      times.sort((a, b) => a - b);
      const stats = (await (await docker()).getContainer(p.container.id).stats({ stream: false })) as unknown as { memory_stats: { usage?: number } };
      const memMiB = (stats.memory_stats.usage ?? 0) / 1024 / 1024;
      console.log(
        `hasher: plugin image built in ${pluginBuildMs} ms; node hub -> hasher -> node hub p50 ${times[150]!.toFixed(0)} us; memory ${memMiB.toFixed(1)} MiB`,
      );
      expect(memMiB).toBeLessThan(16);

      p.send({ type: 'shutdown', id: 's1', data: { graceMs: 2000 } });
      const exitCode = await p.container.wait();
      expect(exitCode, p.output()).toBe(0);
      await p.hub.until('the close', () => p.hub.events.closeCode);
      expect(p.hub.events.closeCode).toBe(1000);
    } finally {
      await p.cleanup();
    }
  });

  it('the hasher stops cleanly on SIGTERM (docker stop): close 1000, exit 0, well before the kill', async () => {
    const p = await startHasher(pluginDir, pluginTag);
    try {
      const hello = await p.hub.next((m) => m.type === 'hello', 'hello');
      p.send({ type: 'response', id: 'h1', correlationId: hello.id, success: true, data: { plugin: 'hasher', protocol: 1 } });
      expect(((await p.call('digest', { text: '' })) as { success: boolean }).success).toBe(true);
      const t = Date.now();
      await p.container.stop(20);
      expect(Date.now() - t).toBeLessThan(10_000);
      expect((await p.container.inspect()).State.ExitCode, p.output()).toBe(0);
      await p.hub.until('the close', () => p.hub.events.closeCode);
      expect(p.hub.events.closeCode).toBe(1000);
      expect(p.output()).toContain('SIGTERM');
    } finally {
      await p.cleanup();
    }
  });

  it('a compile error is reported as LM_IMAGE_BUILD with the compiler’s message in it', async () => {
    const dir = hasherCopy('hasher-broken');
    appendFileSync(path.join(dir, 'main.rs'), '\nfn broken() -> u32 {\n    "not a number"\n}\n');
    const err: unknown = await ensurePluginImage(await docker(), rust, loadManifest(dir), { log: silentLogger }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isLogoMeshError(err)).toBe(true);
    if (!isLogoMeshError(err)) return;
    expect(err.code).toBe('LM_IMAGE_BUILD');
    expect(err.message).toContain('error[E0308]: mismatched types');
    expect(err.message).toContain('--> plugin/main.rs:');
    expect(err.message).toContain('expected `u32`, found `&str`');
  }, 120_000);
});

describeProbe('rust');
