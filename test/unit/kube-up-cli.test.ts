import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { LABEL } from '../../src/labels.js';
import { FakeKubeApi } from './support/fake-kube-api.js';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { hubAuthorization } from '../../src/kubernetes/hub-auth.js';

const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
const NS = 'lm-cli';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const sink = new Writable({ write: (c, _e, cb) => ((err += String(c)), cb()) }) as unknown as NodeJS.WriteStream;
  const io: CliIo = { out: () => undefined, err: (l) => (err += `${l}\n`), stdout: sink, stderr: sink };
  return { code: await main(args, io), err };
}

/** `logomesh <args>` as a process, its stderr kept. */
function cli(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  return { child, stderr: () => text, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}

async function until<T>(fn: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An SDK's connection: the key from the fake's Secret, a fresh handshake (again after a refusal, as the SDKs retry), hello, and shutdown honoured. */
async function plugin(api: FakeKubeApi, port: number): Promise<WebSocket> {
  const end = Date.now() + 15_000;
  for (;;) {
    const key = Buffer.from(api.get('Secret', 'lm-hubkey-echoer')!.data!.key!, 'base64');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1`, { headers: { Authorization: hubAuthorization(key, 'echoer', Date.now(), randomBytes(16).toString('hex')) } });
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('error', () => resolve(false));
    });
    if (opened) {
      ws.on('message', (raw) => {
        const m = JSON.parse(raw.toString()) as { type: string };
        if (m.type === 'shutdown') ws.close();
      });
      ws.send(JSON.stringify({ type: 'hello', id: 'h1', protocol: 1, methods: ['echo'], sdk: 'fake' }));
      return ws;
    }
    if (Date.now() > end) throw new Error('the plugin could not connect');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('logomesh up --backend kubernetes', () => {
  let root: string;
  let api: FakeKubeApi;
  const sockets: WebSocket[] = [];

  beforeEach(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'lm-kube-up-'));
    api = new FakeKubeApi();
    const dir = path.join(root, 'plugins', 'echoer');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'main.py'), '\n');
    writeFileSync(path.join(dir, 'plugin.yaml'), 'id: echoer\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\ncoordination:\n  exposesMethods: [echo]\n');
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await api.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses the Kubernetes options without the backend, an unknown backend, and a missing cluster', async () => {
    expect(await run(['up', root, '--namespace', 'x'])).toMatchObject({ code: 2, err: expect.stringContaining('--namespace is an option of --backend kubernetes') });
    expect(await run(['up', root, '--backend', 'nomad'])).toMatchObject({ code: 2, err: expect.stringContaining("--backend must be docker or kubernetes, found 'nomad'") });
    const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST, LOGOMESH_HOME: process.env.LOGOMESH_HOME };
    try {
      delete process.env.KUBECONFIG;
      delete process.env.KUBERNETES_SERVICE_HOST;
      process.env.HOME = root;
      process.env.LOGOMESH_HOME = path.join(root, 'home');
      expect(await run(['up', path.join(root, 'plugins'), '--backend', 'kubernetes'])).toMatchObject({ code: 1, err: expect.stringContaining('LM_KUBE_CONFIG: no Kubernetes cluster: KUBECONFIG is not set') });
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }, 60_000); // three CLI processes, each starting TypeScript: seconds each on a loaded machine

  it('runs the plugins on the cluster; SIGTERM leaves them to the next controller, which adopts them; down removes them', async () => {
    const server = await api.start();
    const kubeconfig = path.join(root, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "${server}", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: fake, user: u, namespace: ${NS}}\ncurrent-context: c\n`,
    );
    const env = { KUBECONFIG: kubeconfig, LOGOMESH_HOME: path.join(root, 'home'), LOGOMESH_HUB_PLUGIN_PORT: '0', LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_INSTANCE: '' };
    const portOf = (text: string) => Number(/"port":(\d+),"msg":"the hub takes plugins on TCP"/.exec(text)?.[1]);

    const first = cli(['up', path.join(root, 'plugins'), '--backend', 'kubernetes'], env);
    try {
      const port = await until(() => portOf(first.stderr()), 20_000, 'the hub listening');
      await until(() => api.pods({ [LABEL.plugin]: 'echoer' }).length === 1, 10_000, 'the plugin Pod');
      sockets.push(await plugin(api, port));
      await until(() => first.stderr().includes('1 plugin(s) ready'), 10_000, 'ready');
      const pod = api.pods({ [LABEL.plugin]: 'echoer' })[0]!.metadata.name;
      expect(api.get('Deployment', 'lm-plugin-echoer')!.metadata.labels).toMatchObject({ [LABEL.instance]: NS });

      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      // Left running: the Deployment, its Pod and its key stay.
      expect(api.pods({ [LABEL.plugin]: 'echoer' }).map((p) => p.metadata.name)).toEqual([pod]);
      expect(api.get('Secret', 'lm-hubkey-echoer')).toBeDefined();

      const mark = api.seen.length;
      const second = cli(['up', path.join(root, 'plugins'), '--backend', 'kubernetes'], env);
      try {
        const port2 = await until(() => portOf(second.stderr()), 20_000, 'the second hub listening');
        sockets.push(await plugin(api, port2));
        await until(() => second.stderr().includes('1 plugin(s) ready'), 10_000, 'adopted');
        expect(api.seen.slice(mark).filter((s) => s.method === 'POST' && s.path.endsWith('/deployments'))).toEqual([]);
        expect(second.stderr()).toContain('adopted a running plugin Deployment');

        const down = cli(['down'], env);
        expect(await down.exited).toBe(0);
        expect(await second.exited).toBe(0);
        for (const kind of ['Deployment', 'Pod', 'NetworkPolicy', 'Secret']) expect(api.objects(kind), kind).toEqual([]);
      } finally {
        second.child.kill('SIGKILL');
      }
    } finally {
      first.child.kill('SIGKILL');
    }
  }, 90_000);
});
