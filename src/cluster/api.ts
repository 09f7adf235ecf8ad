import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { KubeConfig, KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PodView } from './pod-status.js';

/** Where the cluster is: the usual places unless said otherwise. */
export interface ClusterOptions {
  /** The installation's namespace (default: LOGOMESH_NAMESPACE, else the kubeconfig context's, else `logomesh`). */
  readonly namespace?: string;
  /**
   * An API server reached without credentials (a test's fake API server). Otherwise the
   * kubeconfig from KUBECONFIG, ~/.kube/config, or the Pod's ServiceAccount.
   */
  readonly server?: string;
}

/** An object as the backend reads and writes it: what `kubectl apply` takes, with a status once read. */
export interface KubeResource extends KubernetesObject {
  readonly spec?: unknown;
  readonly status?: unknown;
  readonly data?: Record<string, string>;
}

/** How an object is named in an operation's error: `Deployment lm-plugin-analyzer`. */
function what(o: { kind?: string; metadata?: { name?: string } }): string {
  return `${o.kind ?? '?'} ${o.metadata?.name ?? '(list)'}`;
}

/** The HTTP status of a failed request (undefined: no answer). */
export function kubeStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function serverMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  const parsed = typeof body === 'string' ? safeJson(body) : body;
  const message = (parsed as { message?: unknown } | null)?.message;
  if (typeof message === 'string') return message;
  return err instanceof Error ? err.message : String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The Kubernetes API as the backend uses it: objects of one namespace, created, read,
 * replaced, listed by label and deleted, through `@kubernetes/client-node`'s generic object
 * API (loaded on first use, as dockerode is). Every failure is LM_KUBE_API naming the
 * operation, the object, the status and the server's message; "not found" on a read or a
 * delete is an answer, not a failure.
 */
export class KubeApi {
  private constructor(
    readonly config: KubeConfig,
    private readonly objects: KubernetesObjectApi,
    readonly namespace: string,
    private readonly log: Logger,
  ) {}

  /** Load the kubeconfig from the usual places (or `opts.server`); LM_KUBE_CONFIG when there is none. */
  static async connect(opts: ClusterOptions, log: Logger): Promise<KubeApi> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    if (opts.server !== undefined) {
      // The client refuses plain HTTP unless told to skip TLS checks: there is no TLS to check then.
      kc.loadFromClusterAndUser({ name: 'logomesh', server: opts.server, skipTLSVerify: opts.server.startsWith('http://') }, { name: 'logomesh' });
    } else {
      const home = path.join(os.homedir(), '.kube', 'config');
      if (!process.env.KUBECONFIG && !existsSync(home) && !process.env.KUBERNETES_SERVICE_HOST) {
        throw new LogoMeshError('LM_KUBE_CONFIG', 'no Kubernetes cluster: KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a Pod', {
          expected: 'a kubeconfig (KUBECONFIG or ~/.kube/config) or a Pod with a ServiceAccount',
          found: 'none of them',
        });
      }
      try {
        kc.loadFromDefault();
      } catch (err) {
        throw new LogoMeshError('LM_KUBE_CONFIG', `the kubeconfig cannot be read: ${(err as Error).message}`, { file: process.env.KUBECONFIG ?? home }, { cause: err });
      }
      if (!kc.getCurrentCluster()) throw new LogoMeshError('LM_KUBE_CONFIG', 'the kubeconfig has no current context with a cluster', { file: process.env.KUBECONFIG ?? home, expected: 'a current-context naming a cluster', found: kc.getCurrentContext() || 'none' });
    }
    const namespace = opts.namespace ?? process.env.LOGOMESH_NAMESPACE ?? contextNamespace(kc) ?? 'logomesh';
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(namespace)) {
      throw new LogoMeshError('LM_KUBE_CONFIG', `namespace '${namespace}' is not a Kubernetes namespace name`, { path: '--namespace', expected: 'a DNS label', found: `'${namespace}'` });
    }
    return new KubeApi(kc, k8s.KubernetesObjectApi.makeApiClient(kc), namespace, log.child({ component: 'kube-api', namespace }));
  }

  /** The API server's version: a cheap request every authenticated client may make (the liveness ping). */
  async version(): Promise<string> {
    const k8s = await import('@kubernetes/client-node');
    return this.call('read the server version', { kind: 'Version' }, async () => (await this.config.makeApiClient(k8s.VersionApi).getCode()).gitVersion);
  }

  async create<T extends KubeResource>(obj: T): Promise<T> {
    return this.call('create', obj, () => this.objects.create(this.inNamespace(obj)));
  }

  /** Create, or replace what is there under the same name (read for its resourceVersion first). */
  async put<T extends KubeResource>(obj: T): Promise<T> {
    try {
      return await this.objects.create(this.inNamespace(obj));
    } catch (err) {
      if (kubeStatus(err) !== 409) throw this.failure('create', obj, err);
    }
    const current = await this.read({ apiVersion: obj.apiVersion ?? 'v1', kind: obj.kind ?? '', metadata: { name: obj.metadata?.name ?? '' } });
    const resourceVersion = current?.metadata?.resourceVersion;
    const replacement = { ...obj, metadata: { ...obj.metadata, ...(resourceVersion ? { resourceVersion } : {}) }, ...(obj.kind === 'Service' ? { spec: keepClusterIp(obj.spec, current?.spec) } : {}) };
    return this.call('replace', obj, () => this.objects.replace(this.inNamespace(replacement)));
  }

  /** The object, or undefined when there is none. */
  async read<T extends KubeResource>(obj: { apiVersion: string; kind: string; metadata: { name: string } }): Promise<T | undefined> {
    try {
      return (await this.objects.read<T>(this.inNamespace(obj))) as T;
    } catch (err) {
      if (kubeStatus(err) === 404) return undefined;
      throw this.failure('read', obj, err);
    }
  }

  async list<T extends KubeResource>(apiVersion: string, kind: string, labelSelector: string): Promise<T[]> {
    const list = await this.call('list', { kind }, () => this.objects.list<T>(apiVersion, kind, this.namespace, undefined, undefined, undefined, undefined, labelSelector));
    // A list's items carry no apiVersion and kind of their own.
    return list.items.map((i) => ({ ...i, apiVersion, kind }));
  }

  /** The Pods a label selector names, and the list's resourceVersion to watch from. */
  async listPods(labelSelector: string): Promise<{ items: PodView[]; resourceVersion: string }> {
    const list = await this.call('list', { kind: 'Pod' }, () => this.objects.list('v1', 'Pod', this.namespace, undefined, undefined, undefined, undefined, labelSelector));
    return { items: list.items as PodView[], resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** Set a Deployment's replicas (a merge patch of spec.replicas). */
  async scale(name: string, replicas: number): Promise<void> {
    const k8s = await import('@kubernetes/client-node');
    const obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: this.namespace }, spec: { replicas } };
    try {
      await this.objects.patch(obj, undefined, undefined, 'logomesh', undefined, k8s.PatchStrategy.MergePatch);
    } catch (err) {
      if (kubeStatus(err) !== 404) throw this.failure('scale', obj, err);
    }
  }

  /** Delete; gone already is fine. Dependents (a Deployment's Pods) go in the background. */
  async remove(obj: { apiVersion: string; kind: string; metadata: { name: string } }, graceSeconds?: number): Promise<void> {
    try {
      await this.objects.delete(this.inNamespace(obj), undefined, undefined, graceSeconds, undefined, 'Background');
      this.log.debug({ object: what(obj) }, 'deleted');
    } catch (err) {
      if (kubeStatus(err) !== 404) throw this.failure('delete', obj, err);
    }
  }

  /**
   * Follow a container's output from its start into `out` until it ends or the returned
   * controller aborts (stdout and stderr are one stream in a Pod's log); `tailLines`: only
   * the last lines written so far, then what comes.
   */
  async followLog(pod: string, container: string, out: Writable, tailLines?: number): Promise<AbortController> {
    const k8s = await import('@kubernetes/client-node');
    return this.call('follow the log of', { kind: 'Pod', metadata: { name: pod } }, () => new k8s.Log(this.config).log(this.namespace, pod, container, out, { follow: true, ...(tailLines !== undefined ? { tailLines } : {}) }));
  }

  private inNamespace<T extends { metadata?: object }>(obj: T): T & { metadata: { namespace: string } } {
    return { ...obj, metadata: { ...obj.metadata, namespace: this.namespace } };
  }

  private async call<R>(operation: string, obj: { kind?: string; metadata?: { name?: string } }, fn: () => Promise<R>): Promise<R> {
    try {
      const result = await fn();
      this.log.debug({ operation, object: what(obj) }, 'api');
      return result;
    } catch (err) {
      throw this.failure(operation, obj, err);
    }
  }

  /** LM_KUBE_API naming the operation, the object, the status and the server's message. */
  failure(operation: string, obj: { kind?: string; metadata?: { name?: string } }, err: unknown): LogoMeshError {
    const status = kubeStatus(err);
    const answer = status === undefined ? `no answer (${err instanceof Error ? err.message : String(err)})` : `${status}: ${serverMessage(err)}`;
    return new LogoMeshError('LM_KUBE_API', `${operation} ${what(obj)} in ${this.namespace}: ${answer}`, { operation, object: what(obj), namespace: this.namespace, status }, { cause: err });
  }
}

/** A Service's address is the API server's to give and never changes: a replacement carries it over (else 422: immutable). */
function keepClusterIp(desired: unknown, current: unknown): unknown {
  const ip = current as { clusterIP?: string; clusterIPs?: string[] } | undefined;
  return { ...(desired as object), ...(ip?.clusterIP ? { clusterIP: ip.clusterIP } : {}), ...(ip?.clusterIPs ? { clusterIPs: ip.clusterIPs } : {}) };
}

function contextNamespace(kc: KubeConfig): string | undefined {
  const current = kc.getContextObject(kc.getCurrentContext());
  return current?.namespace || undefined;
}
