import { chmodSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ensureRuntimeImage } from '../../src/images/build.js';
import { ownerLabels } from '../../src/labels.js';
import { createLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { node } from '../../src/runtimes/node.js';
import { PLUGIN_USER } from '../../src/runtimes/runtime.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { describeProbe } from './sdk-probe.js';
import { docker, instance, REPO, tempDir } from './support.js';

const SDK_TESTS = path.join(REPO, 'images', 'node', 'test');
const log = createLogger('test-sdk-node', 'warn');

type Container = Awaited<ReturnType<Awaited<ReturnType<typeof docker>>['createContainer']>>;

/** Start a container and collect its output; `done` resolves with the exit code and the output. */
async function startCaptured(container: Container): Promise<{ done: Promise<{ code: number; output: string }>; output: () => string }> {
  const engine = await docker();
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  engine.modem.demuxStream(stream, out, out);
  const ended = new Promise<void>((resolve) => stream.once('end', () => resolve()));
  await container.start();
  const output = () => Buffer.concat(chunks).toString();
  const done = (async () => {
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    // Let the attached stream deliver its last bytes.
    await Promise.race([ended, new Promise((r) => setTimeout(r, 5_000))]);
    return { code: StatusCode, output: output() };
  })();
  return { done, output };
}

/**
 * The Node.js SDK's own tests (node --test against its fake hub, logomesh/testing, and the
 * protocol's conformance transcript at /opt/logomesh/protocol) run inside the runtime image,
 * as the plugin user, with no network and a read-only root: where 'logomesh' resolves the
 * way it does for plugins.
 */
describe('the Node.js SDK in its runtime image', () => {
  it('passes its node --test suite', { timeout: 300_000 }, async () => {
    const engine = await docker();
    const image = await ensureRuntimeImage(engine, node, { log, progress: process.stderr });
    const container = await engine.createContainer({
      Image: image.tag,
      // Every *.test.js of images/node/test/ (a glob node --test expands itself).
      Cmd: ['node', '--test', '--test-reporter=spec', '/sdk-test/*.test.js'],
      User: PLUGIN_USER,
      WorkingDir: '/sdk-test',
      Env: ['HOME=/tmp'],
      Labels: ownerLabels('test', instance()),
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=16m,mode=1777' },
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges:true'],
        Init: true,
        Memory: 256 * 1024 * 1024,
        PidsLimit: 64,
        Mounts: [{ Type: 'bind', Source: SDK_TESTS, Target: '/sdk-test', ReadOnly: true }],
      },
    });
    try {
      const { done } = await startCaptured(container);
      const { code, output } = await done;
      expect(code, output).toBe(0);
      expect(output).toMatch(/ℹ pass [1-9]\d*/);
      expect(output).toMatch(/ℹ fail 0/);
      const p50 = /round trip in one process: p50 ([\d.]+) us/.exec(output)?.[1];
      if (p50) console.log(`node SDK, in-process round trip p50: ${p50} us`);
    } finally {
      await container.remove({ force: true });
    }
  });
});

interface Msg {
  type: string;
  id: string;
  correlationId?: string;
  success?: boolean;
  data?: unknown;
  error?: { code: string; message: string; details?: unknown };
  topic?: string;
  methods?: string[];
}

/** A minimal hub on a Unix socket in a folder the plugin's container gets at /run/logomesh. */
class TestHub {
  readonly dir = tempDir('lm-node-hub-');
  readonly socket = path.join(this.dir, 'hub.sock');
  private readonly server = http.createServer();
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private readonly inbox: Msg[] = [];
  private readonly waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  private seq = 0;
  ws?: WebSocket;
  closed?: Promise<number>;

  async listen(): Promise<void> {
    this.server.on('upgrade', (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws)));
    await new Promise<void>((resolve) => this.server.listen(this.socket, resolve));
    // The plugin runs as another uid: the folder must be searchable and the socket writable.
    chmodSync(this.dir, 0o755);
    chmodSync(this.socket, 0o777);
  }

  private accept(ws: WebSocket): void {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as Msg;
      const i = this.waiters.findIndex((w) => w.match(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(msg);
      else this.inbox.push(msg);
    });
  }

  next(match: (m: Msg) => boolean, timeoutMs = 15_000): Promise<Msg> {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const at = this.waiters.indexOf(w);
        if (at >= 0) {
          this.waiters.splice(at, 1);
          reject(new Error(`no matching message from the plugin within ${timeoutMs} ms`));
        }
      }, timeoutMs);
    });
  }

  send(msg: Record<string, unknown>): void {
    this.ws!.send(JSON.stringify({ timestamp: Date.now(), ...msg }));
  }

  async request(method: string, data?: unknown): Promise<Msg> {
    const id = `r${++this.seq}`;
    this.send({ type: 'request', id, from: 'host', to: ['thoughts'], method, data, timeout: 5000 });
    return this.next((m) => m.type === 'response' && m.correlationId === id);
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('the thoughts example plugin in its sandbox', () => {
  it('serves get_thoughts and add_thought, emits thought.added, and exits 0 on shutdown', { timeout: 300_000 }, async () => {
    const engine = await docker();
    await ensureRuntimeImage(engine, node, { log, progress: process.stderr });
    const hub = new TestHub();
    await hub.listen();
    const loaded = loadManifest(path.join(REPO, 'manifests', 'thoughts'));
    const spec = containerSpec({ loaded, runtime: node, instance: instance(), env: { LOGOMESH_HUB_SOCKET: '/run/logomesh/hub.sock' } });
    // As the controller mounts it: read-only (connecting to a socket is not a write to the mount).
    spec.HostConfig!.Mounts!.push({ Type: 'bind', Source: hub.dir, Target: '/run/logomesh', ReadOnly: true });
    const container = await engine.createContainer(spec);
    try {
      const { done, output } = await startCaptured(container);
      const hello = await hub.next((m) => m.type === 'hello').catch((err: Error) => {
        throw new Error(`${err.message}\n--- plugin output ---\n${output()}`);
      });
      expect(hello.methods).toEqual(['get_thoughts', 'add_thought']);
      hub.send({ type: 'response', id: 'h', correlationId: hello.id, success: true, data: { plugin: 'thoughts', protocol: 1 } });

      const first = await hub.request('get_thoughts');
      expect(first.success).toBe(true);
      const seeded = (first.data as { thoughts: string[] }).thoughts;
      expect(seeded).toHaveLength(4);
      for (const t of seeded) expect(typeof t).toBe('string');

      expect((await hub.request('add_thought', { text: 'Tests are thoughts that run.' })).data).toEqual({ count: 5 });
      const event = await hub.next((m) => m.type === 'event');
      expect(event.topic).toBe('thought.added');
      expect(event.data).toEqual({ text: 'Tests are thoughts that run.' });
      expect(((await hub.request('get_thoughts')).data as { thoughts: string[] }).thoughts).toEqual([...seeded, 'Tests are thoughts that run.']);

      for (const bad of [undefined, null, {}, { text: '' }, { text: '   ' }, { text: 42 }, { text: 'x'.repeat(1001) }]) {
        const r = await hub.request('add_thought', bad);
        expect(r.success, JSON.stringify(bad)).toBe(false);
        expect(r.error?.code, JSON.stringify(bad)).toBe('LM_INVALID_ARGUMENT');
      }
      expect((await hub.request('add_thought', { text: 'y'.repeat(1000) })).data).toEqual({ count: 6 });
      expect((await hub.request('nope')).error?.code).toBe('LM_METHOD_NOT_FOUND');

      // A 10 KB request nested 5000 deep, in the plugin's real sandbox and memory limit: answered
      // with LM_PROTOCOL (issue 9), and the plugin goes on serving.
      hub.ws!.send(`{"type":"request","id":"deep","from":"host","to":["thoughts"],"method":"get_thoughts","timeout":5000,"data":${'['.repeat(5000)}${']'.repeat(5000)}}`);
      expect(await hub.next((m) => m.correlationId === 'deep')).toMatchObject({ success: false, error: { code: 'LM_PROTOCOL' } });
      expect((await hub.request('get_thoughts')).success).toBe(true);

      // One hop each way between the host and the sandboxed plugin.
      const samples: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const t0 = process.hrtime.bigint();
        await hub.request('get_thoughts');
        samples.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      samples.sort((a, b) => a - b);
      const stats = (await container.stats({ stream: false })) as unknown as { memory_stats: { usage?: number } };
      console.log(
        `thoughts plugin: host->plugin->host p50 ${samples[500]!.toFixed(0)} us, p99 ${samples[990]!.toFixed(0)} us; memory ${((stats.memory_stats.usage ?? 0) / 1048576).toFixed(1)} MiB of 96`,
      );

      hub.send({ type: 'shutdown', id: 's', data: { graceMs: 3000 } });
      expect(await hub.closed).toBe(1000);
      const { code, output: out } = await done;
      expect(code, out).toBe(0);
      expect(out).toContain('thoughts: serving 4 thoughts');
    } finally {
      await container.remove({ force: true });
      await hub.close();
    }
  });
});

describeProbe('node');
