import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { KubeBackend } from '../../src/controller/kube-backend.js';
import { CONTROLLER_RULES } from '../../src/kubernetes/controller.js';
import { hubAuthorization } from '../../src/kubernetes/hub-auth.js';
import { renderInstallation } from '../../src/kubernetes/render.js';
import { isRenderedDir, loadRendered } from '../../src/kubernetes/rendered.js';
import { kubeTarget } from '../../src/kubernetes/target.js';
import { LABEL } from '../../src/labels.js';
import { NO_POLICY } from '../../src/policy/policy.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { FakeKubeApi, type Obj } from './support/fake-kube-api.js';

const NS = 'lm-test';

/** A plugin folder the manifest loader accepts. */
function pluginFolder(root: string, id: string, extra = ''): string {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'main.py'), 'print("hi")\n');
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\ncoordination:\n  exposesMethods: [echo]\nrestart: { policy: on-failure, maxRetries: 3, backoffMs: 100 }\n${extra}`,
  );
  return dir;
}

async function until<T>(fn: () => T | undefined | false, ms = 5_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * What an SDK in the plugin's Pod does: read its key (here from the fake's Secret), connect
 * to the hub's plugin port with a fresh handshake, retrying as the SDKs do, say hello and
 * serve `echo`; exit on the hub's shutdown message.
 */
class FakePlugin {
  ws?: WebSocket;
  constructor(
    readonly id: string,
    private readonly api: FakeKubeApi,
    private readonly port: () => number | undefined,
  ) {}

  async connect(): Promise<void> {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const secret = this.api.get('Secret', `lm-hubkey-${this.id}`);
      const port = this.port();
      if (secret && port) {
        const key = Buffer.from(secret.data!.key!, 'base64');
        const ws = new WebSocket(`ws://127.0.0.1:${port}/v1`, { headers: { Authorization: hubAuthorization(key, this.id, Date.now(), randomBytes(16).toString('hex')) } });
        const opened = await new Promise<boolean>((r) => {
          ws.once('open', () => r(true));
          ws.once('error', () => r(false));
        });
        if (opened) return this.serve(ws);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`plugin ${this.id} could not connect`);
  }

  private serve(ws: WebSocket): void {
    this.ws = ws;
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { type: string; id: string; data?: unknown };
      if (m.type === 'request') ws.send(JSON.stringify({ type: 'response', id: `r${m.id}`, correlationId: m.id, success: true, data: { echoed: m.data } }));
      if (m.type === 'shutdown') ws.close();
    });
    ws.send(JSON.stringify({ type: 'hello', id: 'h1', protocol: 1, methods: ['echo'], sdk: 'fake' }));
  }
}

/**
 * Would the controller's Role (kubernetes/controller.ts, CONTROLLER_RULES) let this request
 * through? Discovery and /version are non-resource URLs every authenticated client may read.
 */
function allowedByRole(method: string, urlPath: string, query: Record<string, string>): boolean {
  if (urlPath === '/version' || /^\/(api\/v1|apis\/[^/]+\/[^/]+)$/.test(urlPath)) return method === 'GET';
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/[^/]+\/([a-z]+)(\/[^/]+)?(\/log)?$/.exec(urlPath);
  if (!m) return false;
  const [, group = '', resource, name, log] = m;
  const verb = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method] ?? (query.watch === 'true' ? 'watch' : name ? 'get' : 'list');
  const res = log ? `${resource}/log` : resource!;
  return CONTROLLER_RULES.some((r) => r.apiGroups?.includes(group) && r.resources?.includes(res) && r.verbs.includes(verb));
}

describe('the Kubernetes backend against a fake API server', () => {
  let api: FakeKubeApi;
  let server: string;
  let root: string;
  let controllers: Controller[];
  /** Controllers a test left as if killed: their plugins run on; they are let go (leave) after it. */
  let abandoned: Controller[];
  let plugins: FakePlugin[];
  let backend: KubeBackend;

  async function controller(ids: string[], connect = true): Promise<Controller> {
    backend = await KubeBackend.connect({ server, namespace: NS, hubPluginPort: 0, hubBind: '127.0.0.1' }, silentLogger);
    const b = backend;
    if (connect) {
      api.onPodStarted = (pod) => {
        const p = new FakePlugin(pod.metadata.labels![LABEL.plugin]!, api, () => b.pluginPort);
        plugins.push(p);
        void p.connect().catch(() => undefined);
      };
    }
    const home = resolveHome({ LOGOMESH_HOME: path.join(root, `home`), LOGOMESH_INSTANCE: NS });
    const c = await Controller.create({ log: silentLogger, home, backend: b, startTimeoutMs: 5_000, stopGraceMs: 300, kernelLog: false, pingIntervalMs: 60_000 });
    controllers.push(c);
    c.load(ids.map((id) => loadManifest(path.join(root, id))));
    return c;
  }

  /** The writes the backend made from request `from` on, and its reads of keys: the recorded flow. */
  const flow = (from = 0) => api.seen.slice(from).filter((s) => (s.method !== 'GET' && !s.query.watch) || /secrets\//.test(s.path)).map((s) => `${s.method} ${s.path.replace(`/namespaces/${NS}`, '')}`);

  beforeEach(async () => {
    api = new FakeKubeApi();
    server = await api.start();
    root = mkdtempSync(path.join(os.tmpdir(), 'lm-kube-backend-'));
    controllers = [];
    abandoned = [];
    plugins = [];
    pluginFolder(root, 'echoer');
    pluginFolder(root, 'fetcher', 'capabilities:\n  - id: net\n    scope: network\n    hosts: ["api.example.com:443", "files.example.com:443"]\nresources: { maxNetworkConnections: 4 }\n');
  });

  afterEach(async () => {
    for (const p of plugins) p.ws?.terminate();
    for (const c of controllers) await c.close();
    // A state save such a controller still had waiting would be written into the removed folder.
    for (const c of abandoned) await c.leave();
    await api.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('a start makes the key, applies what the render renders for the plugin, and is ready at hello over TCP', async () => {
    const c = await controller(['echoer']);
    await c.startAll();
    expect(c.status('echoer').state).toBe('ready');
    expect(flow()).toEqual([
      'GET /api/v1/secrets/lm-hubkey-echoer', // 404: none yet
      'POST /api/v1/secrets',
      'POST /apis/networking.k8s.io/v1/networkpolicies',
      'POST /apis/apps/v1/deployments',
    ]);
    const secret = api.get('Secret', 'lm-hubkey-echoer')!;
    expect(Buffer.from(secret.data!.key!, 'base64')).toHaveLength(32);
    expect(secret.metadata.labels).toMatchObject({ [LABEL.plugin]: 'echoer', [LABEL.instance]: NS });
    // What the cluster got is the render's object, every security field through the client library's serializer.
    const d = api.get('Deployment', 'lm-plugin-echoer')!;
    const pod = (d.spec!.template as { spec: Record<string, unknown> }).spec;
    expect(pod).toMatchObject({ automountServiceAccountToken: false, enableServiceLinks: false, securityContext: { runAsNonRoot: true, seccompProfile: { type: 'Localhost' } } });
    expect((pod.containers as Record<string, unknown>[])[0]).toMatchObject({ securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } });
    expect(await c.call('echoer', 'echo', { n: 1 })).toEqual({ echoed: { n: 1 } });
  });

  it("the resource monitor is off on Kubernetes (the Pods' cgroups are on other nodes): stats and live limits say so, the plugin runs on", async () => {
    const c = await controller(['echoer']);
    await c.startAll();
    expect(() => c.stats()).toThrow(expect.objectContaining({ code: 'LM_MONITOR_UNAVAILABLE' }));
    await expect(c.setLimits('echoer', { memoryMB: 128 })).rejects.toMatchObject({ code: 'LM_LIMIT_INVALID', message: expect.stringContaining('runs on Kubernetes') });
    expect(api.get('Deployment', 'lm-plugin-echoer')).toBeDefined();
    expect(await c.call('echoer', 'echo', { n: 2 })).toEqual({ echoed: { n: 2 } });
  });

  it('a networked plugin gets its proxy and allow-list first; revoking a host rewrites the allow-list and restarts the proxy', async () => {
    const c = await controller(['fetcher']);
    api.seed({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'lm-egress-fetcher', namespace: NS }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 9 }] } });
    await c.startAll();
    expect(flow().filter((l) => l.startsWith('POST'))).toEqual([
      'POST /api/v1/secrets',
      'POST /api/v1/configmaps',
      'POST /api/v1/services',
      'POST /apis/networking.k8s.io/v1/networkpolicies',
      'POST /apis/networking.k8s.io/v1/networkpolicies',
      'POST /apis/apps/v1/deployments',
      'POST /apis/apps/v1/deployments',
    ]);
    expect(api.get('Deployment', 'lm-egress-fetcher')).toBeDefined();
    // Applied already (the render applied by a GitOps tool too): replaced, the Service keeping the address it was given.
    expect(api.get('Service', 'lm-egress-fetcher')!.spec).toMatchObject({ clusterIP: '10.96.0.9', ports: [{ port: 3128 }] });
    expect(flow()).toContain('PUT /api/v1/services/lm-egress-fetcher');
    const proxyPods = () => api.pods({ [LABEL.role]: 'egress', [LABEL.plugin]: 'fetcher' }).map((p) => p.metadata.name);
    const [oldProxy] = proxyPods();
    expect(oldProxy).toBeDefined();
    const from = api.seen.length;
    expect(await c.revokeHost('fetcher', 'files.example.com:443')).toBe(true);
    const config = JSON.parse(api.get('ConfigMap', 'lm-egress-fetcher')!.data!['config.json']!) as { hosts: string[] };
    expect(config.hosts).toEqual(['api.example.com:443']);
    // The list written first (a create answered 409, then a replace), then the proxy's Pod deleted: its replacement mounts the list as written, and open connections are cut.
    expect(flow(from)).toEqual(['POST /api/v1/configmaps', 'PUT /api/v1/configmaps/lm-egress-fetcher', `DELETE /api/v1/pods/${oldProxy}`]);
    await until(() => proxyPods().length === 1 && proxyPods()[0] !== oldProxy, 5_000, 'a new proxy Pod');
    // The plugin itself was not touched.
    expect(c.status('fetcher').state).toBe('ready');
    expect(api.get('Deployment', 'lm-plugin-fetcher')).toBeDefined();
  });

  it('an OOM kill the kubelet already restarted is reported as on Docker, and the plugin restarted by its policy', async () => {
    const c = await controller(['echoer']);
    await c.startAll();
    const [pod] = api.pods({ [LABEL.plugin]: 'echoer' });
    const mark = api.seen.length;
    api.terminate(pod!.metadata.name, 137, 'OOMKilled');
    await until(() => c.status('echoer').restarts === 1 && c.status('echoer').state === 'ready', 5_000, 'restart');
    expect(c.status('echoer').lastError).toMatchObject({ code: 'LM_RESOURCE_MEMORY' });
    // Torn down, then created anew with a new run label.
    expect(flow(mark)).toEqual([
      'DELETE /apis/apps/v1/deployments/lm-plugin-echoer',
      'DELETE /apis/networking.k8s.io/v1/networkpolicies/lm-plugin-echoer',
      'GET /api/v1/secrets/lm-hubkey-echoer',
      'POST /apis/networking.k8s.io/v1/networkpolicies',
      'POST /apis/apps/v1/deployments',
    ]);
    expect(api.pods({ [LABEL.plugin]: 'echoer' })).toHaveLength(1);
    expect(api.pods({ [LABEL.plugin]: 'echoer' })[0]!.metadata.name).not.toBe(pod!.metadata.name);
  });

  it('an exit while the watch was down (dropped, history compacted: 410) is found by the new list', async () => {
    const c = await controller(['echoer']);
    await c.startAll();
    const watch = backend.pods.watch!;
    api.dropWatches();
    api.compact();
    const [pod] = api.pods({ [LABEL.plugin]: 'echoer' });
    api.terminate(pod!.metadata.name, 3, 'Error');
    await until(() => c.status('echoer').restarts === 1 && c.status('echoer').state === 'ready', 8_000, 'restart after the drop');
    expect(c.status('echoer').lastError).toMatchObject({ code: 'LM_PLUGIN_EXITED', message: 'plugin echoer exited with code 3' });
    expect(watch.relists).toBeGreaterThan(0);
  });

  it('a Pod deleted under the plugin (node lost, eviction) is an exit; every Pod\'s output is followed on its own stream', async () => {
    api.startOutput = 'started\n';
    const c = await controller(['echoer']);
    await c.startAll();
    const [pod] = api.pods({ [LABEL.plugin]: 'echoer' });
    await until(() => c.logs('echoer').length === 1, 5_000, 'the first Pod\'s output');
    // Its log ends with it; the replacement the ReplicaSet makes (same start) and the new start's Pod have their own.
    await fetch(`${server}/api/v1/namespaces/${NS}/pods/${pod!.metadata.name}`, { method: 'DELETE' });
    await until(() => c.status('echoer').restarts === 1 && c.status('echoer').state === 'ready', 5_000, 'restart');
    expect(c.status('echoer').lastError?.message).toContain('exited with code -1');
    await until(() => c.logs('echoer').length >= 2, 5_000, 'the new start\'s output');
    expect(new Set(c.logs('echoer').map((l) => l.text))).toEqual(new Set(['started']));
  });

  it('a refused create fails the start with LM_KUBE_API naming it, and leaves nothing of the plugin', async () => {
    const c = await controller(['echoer']);
    api.fail('POST', /deployments$/, 403, 'deployments.apps is forbidden: User "system:serviceaccount:lm-test:logomesh-controller" cannot create resource "deployments"');
    const err = await c.startAll().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'LM_KUBE_API' });
    expect((err as Error).message).toBe(`plugin echoer failed to start: create Deployment lm-plugin-echoer in ${NS}: 403: deployments.apps is forbidden: User "system:serviceaccount:lm-test:logomesh-controller" cannot create resource "deployments"`);
    expect(api.objects('Deployment')).toEqual([]);
    expect(api.objects('NetworkPolicy')).toEqual([]);
    expect(c.status('echoer')).toMatchObject({ state: 'failed', lastError: { code: 'LM_KUBE_API' } });
    // The API server answering again, a start by hand works.
    await c.start('echoer');
    expect(c.status('echoer').state).toBe('ready');
  });

  it('a key another controller made meanwhile (409) is read, not replaced; a 500 on reading it fails the start', async () => {
    const c = await controller(['echoer']);
    api.fail('GET', /secrets\/lm-hubkey-echoer$/, 500, 'etcdserver: request timed out');
    await expect(c.start('echoer')).rejects.toMatchObject({ code: 'LM_KUBE_API', message: expect.stringContaining('500: etcdserver: request timed out') });
    const theirs = randomBytes(32);
    api.fail('GET', /secrets\/lm-hubkey-echoer$/, 404, 'not found');
    api.fail('POST', /secrets$/, 409, 'secrets "lm-hubkey-echoer" already exists');
    api.seed({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'lm-hubkey-echoer', namespace: NS }, data: { key: theirs.toString('base64') } });
    await c.start('echoer');
    expect(api.get('Secret', 'lm-hubkey-echoer')!.data!.key).toBe(theirs.toString('base64'));
  });

  it("a plugin's output is its Pod's log, followed into logomesh logs while it runs; an adopted Pod's from its last lines", async () => {
    const first = await controller(['echoer']);
    await first.startAll();
    const [pod] = api.pods({ [LABEL.plugin]: 'echoer' });
    const name = pod!.metadata.name;
    api.writeLog(name, 'echoer: serving\n');
    await until(() => first.logs('echoer').length === 1, 5_000, 'the first line');
    api.writeLog(name, 'a warning\nlater');
    api.writeLog(name, ' on\n');
    await until(() => first.logs('echoer').length === 3, 5_000, 'the lines written since');
    expect(first.logs('echoer').map((l) => l.text)).toEqual(['echoer: serving', 'a warning', 'later on']);
    const follows = () => api.seen.filter((r) => r.path.endsWith(`/pods/${name}/log`));
    expect(follows().map((r) => r.query)).toEqual([expect.objectContaining({ container: 'plugin', follow: 'true' })]);
    expect(follows()[0]!.query.tailLines).toBeUndefined();
    // A following controller adopts it: the Pod's output so far is the earlier controller's, brought in from its last lines.
    await first.hub.close();
    await first.backend.close();
    abandoned.push(...controllers.splice(0));
    for (const p of plugins) p.ws?.terminate();
    const second = await controller(['echoer'], false);
    const p = new FakePlugin('echoer', api, () => backend.pluginPort);
    plugins.push(p);
    void p.connect();
    await second.startAll();
    await until(() => second.logs('echoer').length === 3, 5_000, 'the adopted Pod\'s lines');
    expect(follows()[1]!.query).toMatchObject({ follow: 'true', tailLines: '1000' });
    api.writeLog(name, 'after adoption\n');
    await until(() => second.logs('echoer').at(-1)?.text === 'after adoption', 5_000, 'a line after adoption');
  });

  it('a following controller adopts the running plugin by label (no new Deployment) and removes what is not its own', async () => {
    const first = await controller(['echoer']);
    await first.startAll();
    const d = api.get('Deployment', 'lm-plugin-echoer')!;
    const [pod] = api.pods({ [LABEL.plugin]: 'echoer' });
    // The first controller is killed: its plugin keeps running, disconnected.
    await first.hub.close();
    await first.backend.close();
    abandoned.push(...controllers.splice(0));
    for (const p of plugins) p.ws?.terminate();
    api.seed({ ...d, metadata: { ...d.metadata, name: 'lm-plugin-gone', labels: { ...d.metadata.labels, [LABEL.plugin]: 'gone' } } } as Obj);
    const mark = api.seen.length;
    const second = await controller(['echoer'], false);
    // Its SDK reconnects to the new hub by itself.
    const p = new FakePlugin('echoer', api, () => backend.pluginPort);
    plugins.push(p);
    void p.connect();
    await second.startAll();
    expect(second.status('echoer').state).toBe('ready');
    const writes = flow(mark).filter((l) => !l.startsWith('GET'));
    expect(writes).toEqual(['DELETE /apis/apps/v1/deployments/lm-plugin-gone']);
    expect(api.pods({ [LABEL.plugin]: 'echoer' }).map((x) => x.metadata.name)).toEqual([pod!.metadata.name]);
    expect(await second.call('echoer', 'echo', 2)).toEqual({ echoed: 2 });
    // Its exit is still followed after the adoption.
    api.terminate(pod!.metadata.name, 1, 'Error');
    await until(() => second.status('echoer').restarts === 1, 5_000, 'restart of the adopted plugin');
  });

  it('closing removes every plugin object and key: no orphans', async () => {
    const c = await controller(['echoer', 'fetcher']);
    await c.startAll();
    await c.close();
    for (const kind of ['Deployment', 'Pod', 'ConfigMap', 'Service', 'NetworkPolicy', 'Secret']) expect(api.objects(kind), kind).toEqual([]);
  });

  it("every request of a whole life (start, OOM kill, host revoked, adoption, close) is one the controller's Role allows", async () => {
    const c = await controller(['echoer', 'fetcher']);
    await c.startAll();
    api.terminate(api.pods({ [LABEL.plugin]: 'echoer' })[0]!.metadata.name, 137, 'OOMKilled');
    await until(() => c.status('echoer').restarts === 1 && c.status('echoer').state === 'ready', 5_000, 'restart');
    await c.revokeHost('fetcher', 'api.example.com:443');
    await c.hub.close();
    await c.backend.close();
    abandoned.push(...controllers.splice(0));
    for (const p of plugins) p.ws?.terminate();
    const next = await controller(['echoer', 'fetcher']);
    const again = new FakePlugin('echoer', api, () => backend.pluginPort);
    plugins.push(again);
    void again.connect();
    await next.startAll();
    expect(next.list().map((p) => p.state)).toEqual(['ready', 'ready']);
    await next.close();
    const denied = api.seen.filter((s) => !allowedByRole(s.method, s.path, s.query));
    expect(denied.map((s) => `${s.method} ${s.path}`)).toEqual([]);
    // Secrets are only ever read, made and deleted by name: never listed or watched.
    expect(api.seen.filter((s) => s.path.endsWith('/secrets') && s.method === 'GET')).toEqual([]);
  }, 30_000);

  it('a controller in the cluster loads the render\'s manifests folder and applies the objects as rendered', async () => {
    const loaded = ['echoer', 'fetcher'].map((id) => loadManifest(path.join(root, id)));
    const target = kubeTarget({ namespace: NS });
    const installation = renderInstallation({ loaded, policy: NO_POLICY, target, images: { echoer: 'reg/plugin-echoer:1', fetcher: 'reg/plugin-fetcher:1' } });
    // The ConfigMap as the kubelet mounts it: one file per key.
    const cm = installation.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === 'logomesh-manifests') as unknown as { data: Record<string, string> };
    const mounted = path.join(root, 'mounted');
    mkdirSync(mounted);
    for (const [k, v] of Object.entries(cm.data)) writeFileSync(path.join(mounted, k), v);
    expect(isRenderedDir(mounted)).toBe(true);
    expect(isRenderedDir(root)).toBe(false);
    const c = await controller([]);
    c.load(backend.useRendered(loadRendered(mounted)));
    await c.startAll();
    expect(c.list().map((p) => p.state)).toEqual(['ready', 'ready']);
    const applied = api.get('Deployment', 'lm-plugin-echoer')!;
    const rendered = installation.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'lm-plugin-echoer') as unknown as Obj;
    expect((applied.spec!.template as { spec: unknown }).spec).toEqual((rendered.spec!.template as { spec: unknown }).spec);
    expect(applied.metadata.annotations![LABEL.manifestHash]).toBe(loaded[0]!.hash);
    expect(api.get('Deployment', 'lm-egress-fetcher')).toBeDefined();

    // What the render did not write, or an edited manifest, is refused with where and why.
    rmSync(path.join(mounted, 'echoer.objects.json'));
    expect(() => loadRendered(mounted)).toThrow(expect.objectContaining({ code: 'LM_KUBE_RENDER', message: expect.stringContaining('echoer.objects.json: expected the file logomesh kube render writes') }));
    writeFileSync(path.join(mounted, 'echoer.objects.json'), '[]\n');
    writeFileSync(path.join(mounted, 'fetcher.json'), JSON.stringify({ ...JSON.parse(cm.data['fetcher.json']!), resources: { maxMemoryMB: -1 } }));
    expect(() => loadRendered(mounted)).toThrow(expect.objectContaining({ code: 'LM_MANIFEST_LIMIT', message: expect.stringContaining('fetcher.json LM_MANIFEST_LIMIT /resources/maxMemoryMB') }));
  }, 30_000);

  it('no API server answering: LM_KUBE_API before anything', async () => {
    await api.close();
    await expect(KubeBackend.connect({ server, namespace: NS }, silentLogger)).rejects.toMatchObject({ code: 'LM_KUBE_API' });
  });
});
