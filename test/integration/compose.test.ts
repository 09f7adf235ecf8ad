import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ControlClient } from '../../src/control/client.js';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { LABEL, labelFilter, OWNER } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { node } from '../../src/runtimes/node.js';
import { compose as composeIn, shareHome, type Done } from './compose-support.js';
import { docker, instance, REPO, tempDir } from './support.js';

/**
 * `docker compose up` from the repository root, as an operator runs it: the controller image
 * is built, the controller starts the example plugins as sibling containers, a host client
 * reaches the hub through the published port with the token, and `down` leaves nothing.
 */

const PROJECT = `lmtest-${randomBytes(4).toString('hex')}`;
const HUB_PORT = 7070; // inside the controller container (compose.yaml)
const UP_TIMEOUT_MS = 5 * 60_000;
const DOWN_TIMEOUT_MS = 2 * 60_000;
const compose = (args: string[], env: Record<string, string>, timeoutMs: number): Promise<Done> => composeIn(PROJECT, args, env, timeoutMs);

/** The same digest as the hasher plugin: 64-bit FNV-1a over UTF-8, 16 hex digits. */
function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

function connect(url: string, headers: Record<string, string>, timeoutMs = 10_000): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Send one hub request and wait (bounded) for the response that answers it. */
function request(ws: WebSocket, body: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const id = randomBytes(4).toString('hex');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no response to ${id} within ${timeoutMs} ms`)), timeoutMs);
    ws.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as Record<string, unknown>;
      if (msg.correlationId !== id) return;
      clearTimeout(timer);
      resolve(msg);
    });
    ws.send(JSON.stringify({ type: 'request', id, ...body }));
  });
}

describe('docker compose up runs the controller and its plugins', () => {
  const home = tempDir('lm-compose-');
  const token = randomBytes(24).toString('hex');
  const pluginInstance = `${instance()}-compose`;
  const env = {
    LOGOMESH_COMPOSE_HOME: home,
    // Empty: the engine picks a free host port, so this can run next to anything else.
    LOGOMESH_COMPOSE_PORT: '',
    LOGOMESH_COMPOSE_CONSOLE_PORT: '',
    LOGOMESH_HUB_TOKEN: token,
    LOGOMESH_INSTANCE: pluginInstance,
  };
  let up: Done | undefined;
  let downDone = false;
  let unshare = (): void => undefined;

  beforeAll(async () => {
    unshare = shareHome(home);
    // What images/controller/prepare.sh does: the Node.js binary the image copies in.
    for (const image of node.images) await image.prepare?.(silentLogger);
    up = await compose(['up', '-d', '--build', '--wait', '--wait-timeout', String(UP_TIMEOUT_MS / 1000)], env, UP_TIMEOUT_MS + 30_000);
    if (up.code !== 0) up.out += `\n--- controller log ---\n${(await compose(['logs', '--no-color', '--tail', '40'], env, 30_000)).out}`;
    // Plain build progress: "#7 [controller build 3/7] COPY ...", later "#7 CACHED" if it was.
    const steps = new Set([...up.out.matchAll(/^#(\d+) \[controller [^\]]+\] (?:RUN|COPY)/gm)].map((m) => m[1]));
    const cached = new Set([...up.out.matchAll(/^#(\d+) CACHED$/gm)].map((m) => m[1]));
    const rebuilt = [...steps].filter((s) => !cached.has(s)).length;
    console.log(`compose up -d --build --wait: ${(up.ms / 1000).toFixed(1)} s (controller image: ${rebuilt ? `${rebuilt} of ${steps.size} steps rebuilt` : 'every step cached'})`);
  }, UP_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    // Whatever a failed test left: compose's own resources, then the controller's plugins.
    if (!downDone) await compose(['down', '-v', '--timeout', '30'], env, DOWN_TIMEOUT_MS);
    await removeByLabel(await docker(), pluginInstance);
    unshare();
  }, DOWN_TIMEOUT_MS + 30_000);

  it('comes up healthy with every example plugin ready, labelled by the controller', async () => {
    expect(up?.code, up?.out).toBe(0);
    const engine = await docker();
    const plugins = await engine.listContainers({ filters: JSON.stringify(labelFilter(pluginInstance)) });
    expect(plugins.map((c) => c.Labels[LABEL.plugin]).sort()).toEqual(['analyzer', 'hasher', 'thoughts', 'tokenizer']);
    const project = JSON.stringify({ label: [`com.docker.compose.project=${PROJECT}`] });
    const [controller] = await engine.listContainers({ filters: project });
    expect(controller?.Labels).toMatchObject({ [LABEL.owner]: OWNER, [LABEL.role]: 'controller' });
    expect(controller?.Status).toMatch(/healthy/);
    const networks = await engine.listNetworks({ filters: project });
    expect(networks.map((n) => n.Labels?.[LABEL.owner])).toEqual([OWNER]);
    // The home is a host folder at the same path in the controller: the token is readable here.
    expect(readFileSync(path.join(home, 'hub.token'), 'utf8').trim()).toBe(token);
  });

  it('a host client calls analyzer.analyze_results through the published port with the token', async () => {
    const port = await compose(['port', 'controller', String(HUB_PORT)], env, 30_000);
    expect(port.code, port.out).toBe(0);
    const address = port.out.trim().split('\n').at(-1) ?? '';
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    const url = `ws://${address}/v1`;

    await expect(connect(url, {})).rejects.toThrow(/401/);
    await expect(connect(url, { Authorization: 'Bearer not-the-token-at-all' })).rejects.toThrow(/401/);

    const ws = await connect(url, { Authorization: `Bearer ${token}` });
    try {
      const res = await request(ws, { to: ['analyzer'], method: 'analyze_results', data: {} });
      expect(res, JSON.stringify(res)).toMatchObject({ type: 'response', success: true });
      const data = res.data as { thoughts: { text: string; tokens: number; digest: string }[]; topWords: [string, number][] };
      expect(data.thoughts.length).toBeGreaterThanOrEqual(3);
      for (const t of data.thoughts) {
        expect(t.tokens).toBeGreaterThan(0);
        expect(t.digest).toBe(fnv1a64(t.text));
      }
      expect(data.topWords.length).toBeGreaterThan(0);
      for (const [word, count] of data.topWords) {
        expect(typeof word).toBe('string');
        expect(count).toBeGreaterThanOrEqual(1);
      }
    } finally {
      ws.close();
    }
  });

  it('the CLI runs in the service: docker compose exec controller logomesh ps, call, apply --dry-run', async () => {
    const ps = await compose(['exec', '-T', 'controller', 'logomesh', 'ps', '--json'], env, 60_000);
    expect(ps.code, ps.out).toBe(0);
    expect((JSON.parse(ps.out) as { id: string; state: string }[]).map((p) => `${p.id}:${p.state}`)).toEqual(['analyzer:ready', 'hasher:ready', 'thoughts:ready', 'tokenizer:ready']);
    const call = await compose(['exec', '-T', 'controller', 'logomesh', 'call', 'tokenizer.tokenize', '{"text":"a b"}'], env, 60_000);
    expect(call.code, call.out).toBe(0);
    expect(JSON.parse(call.out)).toMatchObject({ tokens: ['a', 'b'] });
    // The plugin folders are mounted at their host path: apply names them as on the host.
    const plan = await compose(['exec', '-T', 'controller', 'logomesh', 'apply', path.join(REPO, 'manifests'), '--dry-run'], env, 60_000);
    expect(plan.code, plan.out).toBe(0);
    expect(plan.out).toContain('unchanged analyzer, hasher, thoughts, tokenizer');
  });

  it("the resource monitor works in the controller's container: usage of every plugin, and a health check on each", async () => {
    // The control socket is in the home, a host folder: the CLI's client reaches it from here.
    const rows = await new ControlClient(path.join(home, 'control.sock')).stats();
    expect(rows.map((r) => r.usage.pluginId).sort()).toEqual(['analyzer', 'hasher', 'thoughts', 'tokenizer']);
    for (const r of rows) {
      expect(r.usage.memory.used, r.usage.pluginId).toBeGreaterThan(0);
      expect(r.usage.io.fileHandles, r.usage.pluginId).toBeGreaterThan(0);
      expect(r.processes?.current, r.usage.pluginId).toBeGreaterThan(0);
    }
    const engine = await docker();
    for (const c of await engine.listContainers({ filters: JSON.stringify(labelFilter(pluginInstance)) })) {
      const info = await engine.getContainer(c.Id).inspect();
      expect(info.Config.Healthcheck?.Test?.[1], c.Labels[LABEL.plugin]).toBe('/run/logomesh-health');
      // Its program comes from the home's cache, a host path.
      expect(info.HostConfig.Mounts?.find((m) => m.Target === '/run/logomesh-health')?.Source).toMatch(new RegExp(`^${home}/cache/`));
      expect(['starting', 'healthy']).toContain(info.State.Health?.Status);
    }
  });

  it('compose down stops the plugins through the controller and leaves nothing of the project', async () => {
    const down = await compose(['down', '-v'], env, DOWN_TIMEOUT_MS);
    downDone = down.code === 0;
    console.log(`compose down -v: ${(down.ms / 1000).toFixed(1)} s`);
    expect(down.code, down.out).toBe(0);
    const engine = await docker();
    expect(await engine.listContainers({ all: true, filters: JSON.stringify(labelFilter(pluginInstance)) })).toEqual([]);
    const ours = JSON.stringify({ label: [`${LABEL.owner}=${OWNER}`, `com.docker.compose.project=${PROJECT}`] });
    expect(await engine.listContainers({ all: true, filters: ours })).toEqual([]);
    expect(await engine.listNetworks({ filters: ours })).toEqual([]);
    expect((await engine.listVolumes({ filters: ours })).Volumes ?? []).toEqual([]);
    // SIGTERM reached the controller, which stopped cleanly: it removes the token and sockets last.
    expect(existsSync(path.join(home, 'hub.token'))).toBe(false);
    expect(existsSync(path.join(home, 'sockets'))).toBe(false);
  });
});
