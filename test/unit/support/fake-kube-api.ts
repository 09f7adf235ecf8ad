import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An object as the fake stores it. */
export type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: Meta; spec?: Record<string, unknown>; status?: Record<string, unknown>; data?: Record<string, string> };
interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
}

/** A request as the fake saw it: the recorded flow the tests compare. */
export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
}

interface Failure {
  readonly method: string;
  readonly path: RegExp;
  readonly status: number;
  readonly message: string;
  times: number;
}

/** The resources the backend uses, as discovery lists them. */
const RESOURCES: Record<string, { name: string; kind: string }[]> = {
  '/api/v1': [
    { name: 'pods', kind: 'Pod' },
    { name: 'secrets', kind: 'Secret' },
    { name: 'configmaps', kind: 'ConfigMap' },
    { name: 'services', kind: 'Service' },
  ],
  '/apis/apps/v1': [{ name: 'deployments', kind: 'Deployment' }],
  '/apis/networking.k8s.io/v1': [{ name: 'networkpolicies', kind: 'NetworkPolicy' }],
};

const LOG_PATH = /^\/api\/v1\/namespaces\/[^/]+\/pods\/([^/]+)\/log$/;
const PATH = /^\/(api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?$/;

/**
 * A Kubernetes API server for tests, in this process: discovery, create, read, replace,
 * merge patch, delete and list by label of the kinds the backend uses, and a watch of Pods
 * that resumes from a resourceVersion (410 once the history was compacted). It plays the
 * kubelet too: a Deployment with replicas gets a running Pod, a Pod's container can be made
 * to end (the kubelet restarts it at once, the exit in lastState), a Pod deleted under a
 * Deployment is replaced, scaling to zero and deleting a Deployment take its Pods; a Pod's
 * log is served and followed. Every
 * request is recorded; a failure can be answered to the next matching ones; watches can be
 * dropped.
 */
export class FakeKubeApi {
  readonly seen: Seen[] = [];
  private readonly store = new Map<string, Obj>();
  private readonly events: { rv: number; type: string; pod: Obj }[] = [];
  private readonly watchers = new Set<{ res: ServerResponse; selector: Record<string, string> }>();
  private readonly failures: Failure[] = [];
  private compactedBefore = 0;
  private rv = 100;
  private server?: Server;
  /** Each Pod's output (its plugin container's), and the requests following it. */
  private readonly podLogs = new Map<string, string>();
  private readonly logFollowers = new Map<string, Set<ServerResponse>>();
  /** What each Pod's container writes first, as soon as the fake kubelet starts it. */
  startOutput = '';
  /** Called with each Pod the fake kubelet starts. */
  onPodStarted: (pod: Obj) => void = () => undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Answer the next `times` requests matching `method` and `path` with this failure. */
  fail(method: string, path: RegExp, status: number, message: string, times = 1): void {
    this.failures.push({ method, path, status, message, times });
  }

  /** The Pod's container wrote this (stdout and stderr are one log). */
  writeLog(pod: string, text: string): void {
    this.podLogs.set(pod, (this.podLogs.get(pod) ?? '') + text);
    for (const res of this.logFollowers.get(pod) ?? []) res.write(text);
  }

  /** End every open watch, as an API server restart or a dropped connection does. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forget the event history: a watch resumed from an older resourceVersion is answered 410 Gone. */
  compact(): void {
    this.compactedBefore = this.rv;
  }

  objects(kind: string): Obj[] {
    return [...this.store.values()].filter((o) => o.kind === kind);
  }

  get(kind: string, name: string): Obj | undefined {
    return this.objects(kind).find((o) => o.metadata.name === name);
  }

  /** Put an object in as if an earlier controller had made it (with its Pod, for a Deployment with replicas). */
  seed(obj: Obj): void {
    this.save(structuredClone(obj));
  }

  /** The kubelet saw the plugin's container end, and restarted it at once (restartPolicy Always). */
  terminate(podName: string, exitCode: number, reason: string): void {
    const pod = this.get('Pod', podName);
    if (!pod) throw new Error(`no Pod ${podName}`);
    const status = pod.status as { containerStatuses: { restartCount: number; lastState?: object; state: object }[] };
    const c = status.containerStatuses[0]!;
    c.restartCount += 1;
    c.lastState = { terminated: { exitCode, reason, finishedAt: new Date().toISOString() } };
    c.state = { running: { startedAt: new Date().toISOString() } };
    this.save(pod);
  }

  /** Pods whose labels include these. */
  pods(labels: Record<string, string> = {}): Obj[] {
    return this.objects('Pod').filter((p) => matches(p.metadata.labels, labels));
  }

  // --- the server -------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    this.seen.push({ method, path: url.pathname, query });
    const body = await readBody(req);
    const failure = this.failures.find((f) => f.times > 0 && f.method === method && f.path.test(url.pathname));
    if (failure) {
      failure.times--;
      return status(res, failure.status, failure.message);
    }
    if (url.pathname === '/version') return json(res, 200, { major: '1', minor: '36', gitVersion: 'v1.36.0-fake' });
    const discovery = RESOURCES[url.pathname];
    if (discovery) return json(res, 200, { kind: 'APIResourceList', groupVersion: url.pathname.replace(/^\/apis?\//, ''), resources: discovery.map((r) => ({ ...r, namespaced: true, singularName: '', verbs: [] })) });
    const log = LOG_PATH.exec(url.pathname);
    if (log && method === 'GET') return this.log(res, log[1]!, query);
    const m = PATH.exec(url.pathname);
    const resource = m && RESOURCES[`/${m[1]}`]?.find((r) => r.name === m[3]);
    if (!m || !resource) return status(res, 404, `the server could not find the requested resource ${url.pathname}`);
    const [, , namespace, , name] = m as unknown as [string, string, string, string, string | undefined];
    const key = (n: string) => `${resource.kind}/${namespace}/${n}`;
    if (!name) {
      if (method === 'POST') {
        const obj = JSON.parse(body) as Obj;
        if (this.store.has(key(obj.metadata.name))) return status(res, 409, `${resource.name} "${obj.metadata.name}" already exists`);
        obj.metadata.namespace = namespace;
        obj.metadata.uid = randomBytes(8).toString('hex');
        obj.metadata.creationTimestamp = new Date(Date.now() + this.rv).toISOString();
        if (obj.kind === 'Service') obj.spec = { ...obj.spec, clusterIP: `10.96.0.${(this.rv % 250) + 2}` };
        return json(res, 201, this.save(obj));
      }
      const selector = parseSelector(query.labelSelector);
      if (query.watch === 'true') return this.watch(res, selector, Number(query.resourceVersion ?? 0));
      const items = this.objects(resource.kind).filter((o) => o.metadata.namespace === namespace && matches(o.metadata.labels, selector));
      return json(res, 200, { apiVersion: 'v1', kind: `${resource.kind}List`, metadata: { resourceVersion: String(this.rv) }, items });
    }
    const current = this.store.get(key(name));
    if (!current) return status(res, 404, `${resource.name} "${name}" not found`);
    switch (method) {
      case 'GET':
        return json(res, 200, current);
      case 'PUT': {
        const obj = JSON.parse(body) as Obj;
        if (obj.kind === 'Service' && obj.spec?.clusterIP !== current.spec?.clusterIP) return status(res, 422, `Service "${name}" is invalid: spec.clusterIP: Invalid value: "": field is immutable`);
        obj.metadata = { ...current.metadata, ...obj.metadata };
        return json(res, 200, this.save(obj));
      }
      case 'PATCH':
        return json(res, 200, this.save(mergePatch(current, JSON.parse(body)) as Obj));
      case 'DELETE':
        this.remove(current);
        return json(res, 200, { kind: 'Status', status: 'Success' });
    }
    return status(res, 405, 'method not allowed');
  }

  /** A Pod's log, as the kubelet serves it through the API server: so far (its last `tailLines`), then, with follow, what comes until the Pod goes. */
  private log(res: ServerResponse, pod: string, query: Record<string, string>): void {
    if (!this.get('Pod', pod)) return status(res, 404, `pods "${pod}" not found`);
    if (query.container !== 'plugin') return status(res, 400, `container ${query.container} is not valid for pod ${pod}`);
    const lines = (this.podLogs.get(pod) ?? '').split(/(?<=\n)/).filter(Boolean);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write(lines.slice(query.tailLines ? -Number(query.tailLines) : 0).join(''));
    if (query.follow !== 'true') return void res.end();
    const followers = this.logFollowers.get(pod) ?? new Set();
    this.logFollowers.set(pod, followers.add(res));
    res.on('close', () => followers.delete(res));
  }

  private watch(res: ServerResponse, selector: Record<string, string>, from: number): void {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    if (from < this.compactedBefore) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: `too old resource version: ${from}` } })}\n`);
      return;
    }
    const w = { res, selector };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
    for (const e of this.events) if (e.rv > from && matches(e.pod.metadata.labels, selector)) res.write(`${JSON.stringify({ type: e.type, object: e.pod })}\n`);
  }

  // --- the kubelet and the controllers ------------------------------------------------------

  private save(obj: Obj): Obj {
    obj.metadata.resourceVersion = String(++this.rv);
    const key = `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`;
    const existed = this.store.has(key);
    this.store.set(key, obj);
    if (obj.kind === 'Pod') this.event(existed ? 'MODIFIED' : 'ADDED', obj);
    if (obj.kind === 'Deployment') this.reconcileDeployment(obj);
    return obj;
  }

  private remove(obj: Obj): void {
    this.store.delete(`${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`);
    if (obj.kind === 'Pod') {
      for (const res of this.logFollowers.get(obj.metadata.name) ?? []) res.end();
      this.logFollowers.delete(obj.metadata.name);
      this.rv++;
      this.event('DELETED', { ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } });
      const owner = this.get('Deployment', obj.metadata.annotations?.owner ?? '');
      if (owner) this.reconcileDeployment(owner); // the ReplicaSet replaces it
    }
    if (obj.kind === 'Deployment') for (const p of this.podsOf(obj)) this.remove(p);
  }

  private podsOf(d: Obj): Obj[] {
    return this.objects('Pod').filter((p) => p.metadata.annotations?.owner === d.metadata.name);
  }

  private reconcileDeployment(d: Obj): void {
    const replicas = (d.spec?.replicas as number | undefined) ?? 1;
    const template = d.spec?.template as { metadata: { labels: Record<string, string> } };
    const pods = this.podsOf(d);
    // A changed template (a new run label) replaces the Pods, as a Recreate rollout does.
    for (const p of pods) if (replicas === 0 || !matches(p.metadata.labels, template.metadata.labels)) this.remove(p);
    if (replicas > 0 && this.podsOf(d).length === 0) {
      const pod: Obj = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${d.metadata.name}-${randomBytes(3).toString('hex')}`, namespace: d.metadata.namespace!, labels: { ...template.metadata.labels }, annotations: { owner: d.metadata.name } },
        spec: {},
        status: { phase: 'Running', containerStatuses: [{ name: 'plugin', restartCount: 0, state: { running: { startedAt: new Date().toISOString() } } }] },
      };
      if (this.startOutput) this.podLogs.set(pod.metadata.name, this.startOutput);
      this.save(pod);
      setImmediate(() => this.onPodStarted(pod));
    }
  }

  private event(type: string, pod: Obj): void {
    const e = { rv: Number(pod.metadata.resourceVersion), type, pod: structuredClone(pod) };
    this.events.push(e);
    for (const w of this.watchers) if (matches(pod.metadata.labels, w.selector)) w.res.write(`${JSON.stringify({ type, object: e.pod })}\n`);
  }
}

function matches(labels: Record<string, string> | undefined, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function parseSelector(text: string | undefined): Record<string, string> {
  if (!text) return {};
  return Object.fromEntries(text.split(',').map((p) => p.split('=') as [string, string]));
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = { ...(typeof target === 'object' && target !== null ? (target as Record<string, unknown>) : {}) };
  for (const [k, v] of Object.entries(patch)) out[k] = v === null ? undefined : mergePatch(out[k], v);
  return out;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => resolve(text));
  });
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
}
