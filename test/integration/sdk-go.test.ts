import type { ContainerCreateOptions } from 'dockerode';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ensurePluginImage, ensureRuntimeImage } from '../../src/images/build.js';
import { isLogoMeshError } from '../../src/errors.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { go } from '../../src/runtimes/go.js';
import { PLUGIN_USER } from '../../src/runtimes/runtime.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { describeProbe } from './sdk-probe.js';
import { docker, instance, REPO, tempDir } from './support.js';

const BUILDER = 'logomesh/builder-go:latest';
const SDK_PACKAGE = 'logomesh.local/logomesh';

beforeAll(async () => {
  await ensureRuntimeImage(await docker(), go, { log: silentLogger, progress: process.stderr });
}, 600_000);

/** Run a command to completion in a throwaway, network-less, non-root container of an image. */
async function runIn(image: string, cmd: string[], mounts: { source: string; target: string }[] = []): Promise<{ code: number; output: string }> {
  const engine = await docker();
  const container = await engine.createContainer({
    Image: image,
    Cmd: cmd,
    User: PLUGIN_USER,
    Labels: ownerLabels('test', instance()),
    Tty: true, // one merged, undemultiplexed output stream
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Init: true,
      Mounts: mounts.map((m) => ({ Type: 'bind', Source: m.source, Target: m.target, ReadOnly: true })),
    },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = (await container.logs({ stdout: true, stderr: true, follow: false })).toString();
    return { code: StatusCode, output };
  } finally {
    await container.remove({ force: true, v: true });
  }
}

describe('the Go SDK', () => {
  it('passes its own tests against a fake hub, inside the builder image', async () => {
    const r = await runIn(BUILDER, ['go', 'test', '-count=1', '-v', `${SDK_PACKAGE}/...`]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/^ok\s+logomesh\.local\/logomesh\s/m);
    expect(r.output).not.toMatch(/--- (FAIL|SKIP): Test(?!HelperPlugin)/);
  }, 180_000);

  it('runs a plugin\'s own tests (the tokenizer\'s, with the SDK\'s fake hub) with logomesh-go-build --test', async () => {
    const r = await runIn(BUILDER, ['logomesh-go-build', '--test', '/plugin', '-count=1', '-v'], [{ source: path.join(REPO, 'manifests', 'tokenizer'), target: '/plugin' }]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('--- PASS: TestTokens');
    expect(r.output).toContain('--- PASS: TestThroughAFakeHub');
  }, 120_000);
});

/** A stand-in for the hub: a WebSocket server on a Unix socket the plugin's container can reach. */
class SocketHub {
  readonly dir: string;
  readonly socket: string;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly waiting: ((c: HubPeer) => void)[] = [];
  private readonly peers: HubPeer[] = [];

  constructor() {
    this.dir = tempDir('lm-go-hub-');
    // The plugin's uid must be able to reach and write the socket.
    chmodSync(this.dir, 0o755);
    this.socket = path.join(this.dir, 'hub.sock');
    this.http = createServer();
    this.wss = new WebSocketServer({ server: this.http });
    this.wss.on('connection', (ws, req) => {
      const peer = new HubPeer(ws, req);
      const w = this.waiting.shift();
      if (w) w(peer);
      else this.peers.push(peer);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.http.listen(this.socket, resolve));
    chmodSync(this.socket, 0o777);
  }

  accept(timeoutMs = 15_000): Promise<HubPeer> {
    const ready = this.peers.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the plugin did not connect to the hub socket')), timeoutMs);
      this.waiting.push((p) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

type Msg = Record<string, unknown>;

class HubPeer {
  readonly path: string | undefined;
  readonly host: string | undefined;
  readonly closed: Promise<number>;
  private readonly queue: Msg[] = [];
  private readonly waiters: ((m: Msg) => void)[] = [];
  private seq = 0;

  constructor(
    private readonly ws: WebSocket,
    req: IncomingMessage,
  ) {
    this.path = req.url;
    this.host = req.headers.host;
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Msg;
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
  }

  next(timeoutMs = 10_000): Promise<Msg> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message from the plugin')), timeoutMs);
      this.waiters.push((msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
  }

  send(m: Msg): void {
    this.ws.send(JSON.stringify(m));
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  async request(method: string, data: unknown): Promise<Msg> {
    const id = `q${++this.seq}`;
    this.send({ type: 'request', id, from: 'host', timestamp: Date.now(), to: ['tokenizer'], method, data, timeout: 5000 });
    const m = await this.next();
    expect(m).toMatchObject({ type: 'response', correlationId: id });
    return m;
  }
}

describe('a Go plugin compiled and run in its sandbox', () => {
  let hub: SocketHub;
  beforeAll(async () => {
    hub = new SocketHub();
    await hub.listen();
  });
  afterAll(async () => {
    await hub.close();
  });

  it('the tokenizer says hello, serves tokenize, and exits 0 on shutdown', async () => {
    const engine = await docker();
    const loaded = loadManifest(path.join(REPO, 'manifests', 'tokenizer'));
    const image = await ensurePluginImage(engine, go, loaded, { log: silentLogger });
    const info = await engine.getImage(image.tag).inspect();
    expect(info.Size, 'the plugin image stays small').toBeLessThan(20 * 1024 * 1024);

    const spec: ContainerCreateOptions = containerSpec({
      loaded,
      runtime: go,
      instance: instance(),
      compiled: { tag: image.tag, command: go.compile?.command ?? [] },
      env: { LOGOMESH_HUB_SOCKET: '/run/logomesh/hub.sock' },
    });
    spec.HostConfig?.Mounts?.push({ Type: 'bind', Source: hub.dir, Target: '/run/logomesh', ReadOnly: false });
    const container = await engine.createContainer(spec);
    try {
      await container.start();
      const peer = await hub.accept();
      expect(peer.path).toBe('/v1');
      expect(peer.host).toBe('logomesh');
      const hello = await peer.next();
      expect(hello).toMatchObject({ type: 'hello', protocol: 1, methods: ['tokenize'] });
      expect(hello.sdk).toMatch(/^go\//);
      peer.send({ type: 'response', id: 'h', correlationId: hello.id, success: true, data: { plugin: 'tokenizer', protocol: 1 } });

      const ok = await peer.request('tokenize', { text: "Hello, Wörld! Don't PANIC 42" });
      expect(ok).toMatchObject({ success: true, data: { tokens: ['hello', 'wörld', "don't", 'panic', '42'] } });
      const empty = await peer.request('tokenize', { text: ' ,.; ' });
      expect(empty).toMatchObject({ success: true, data: { tokens: [] } });
      for (const bad of [{}, { text: 5 }, { text: null }, 'text']) {
        const r = await peer.request('tokenize', bad);
        expect(r, JSON.stringify(bad)).toMatchObject({ success: false, error: { code: 'LM_INVALID_ARGUMENT' } });
      }
      const unknown = await peer.request('detokenize', {});
      expect(unknown).toMatchObject({ success: false, error: { code: 'LM_METHOD_NOT_FOUND' } });

      // A 10 KB request nested 5000 deep, in the plugin's real sandbox and memory limit: answered
      // with LM_PROTOCOL (issue 9), and the plugin goes on serving.
      peer.sendRaw(`{"type":"request","id":"deep","from":"host","to":["tokenizer"],"method":"tokenize","timeout":5000,"data":${'['.repeat(5000)}${']'.repeat(5000)}}`);
      expect(await peer.next()).toMatchObject({ type: 'response', correlationId: 'deep', success: false, error: { code: 'LM_PROTOCOL' } });
      expect(await peer.request('tokenize', { text: 'still here' })).toMatchObject({ success: true, data: { tokens: ['still', 'here'] } });

      peer.send({ type: 'shutdown', id: 'sd', data: { graceMs: 2000 } });
      expect(await peer.closed).toBe(1000);
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      const logs = (await container.logs({ stdout: true, stderr: true })).toString();
      expect(StatusCode, logs).toBe(0);
    } finally {
      await container.remove({ force: true, v: true });
    }
  }, 300_000);

  it('a Go compile error is in the LM_IMAGE_BUILD message', async () => {
    const dir = path.join(tempDir('lm-go-broken-'), 'broken-go');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'plugin.yaml'), 'id: broken-go\nversion: 1.0.0\nruntime: go\nentrypoint: main.go\n');
    writeFileSync(path.join(dir, 'main.go'), 'package main\n\nfunc main() {\n\tnotDefinedAnywhere()\n}\n');
    const err = await ensurePluginImage(await docker(), go, loadManifest(dir), { log: silentLogger }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isLogoMeshError(err) && err.code).toBe('LM_IMAGE_BUILD');
    const message = (err as Error).message;
    expect(message).toContain('main.go:4:2: undefined: notDefinedAnywhere');
    expect(message).toContain('compiling the Go plugin failed');
  }, 120_000);

  it('an entrypoint outside package main is refused with a plain message', async () => {
    const dir = path.join(tempDir('lm-go-lib-'), 'lib-go');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'plugin.yaml'), 'id: lib-go\nversion: 1.0.0\nruntime: go\nentrypoint: lib.go\n');
    writeFileSync(path.join(dir, 'lib.go'), 'package tokens\n\nfunc Split() {}\n');
    const err = await ensurePluginImage(await docker(), go, loadManifest(dir), { log: silentLogger }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toContain("the entrypoint's package is 'tokens'; a plugin's main package must be 'package main'");
  }, 120_000);
});

describeProbe('go');
