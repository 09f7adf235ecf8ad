import type { Logger } from '../log.js';
import type { KubeApi } from './api.js';
import type { PodView } from './pod-status.js';

export type PodEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type PodListener = (type: PodEventType, pod: PodView) => void;

/** Longest wait between two attempts while the API server does not answer. */
const MAX_BACKOFF_MS = 15_000;
/** The API server ends a watch after this; it is then resumed from where it was. */
const WATCH_SECONDS = 300;

/**
 * One watch of the Pods a label selector names (every plugin Pod of the installation): a
 * list, then a watch from the list's resourceVersion. A watch that drops (a closed
 * connection, an API server restart, `410 Gone` for a version too old) is followed by a new
 * list, compared with what was known: a Pod that changed or went away meanwhile is reported
 * as if it had been watched, so no exit is missed. Attempts back off while the server does
 * not answer. Not the client library's informer: it never reports a Pod deleted in a gap
 * between two lists, which is exactly when an exit must not be lost.
 */
export class PodWatch {
  private readonly pods = new Map<string, PodView>();
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** Lists made after the first: each is a watch that dropped (for tests and logs). */
  relists = 0;

  constructor(
    private readonly api: KubeApi,
    private readonly selector: string,
    private readonly log: Logger,
    private readonly listener: PodListener,
  ) {}

  /** The first list (its failure is the caller's: LM_KUBE_API), then the watch, resumed on every drop. */
  async start(): Promise<void> {
    await this.sync();
    void this.watch();
  }

  /** The Pods known now. */
  current(): PodView[] {
    return [...this.pods.values()];
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.abort?.abort();
  }

  private async sync(): Promise<void> {
    const { items, resourceVersion } = await this.api.listPods(this.selector);
    const seen = new Set<string>();
    for (const pod of items) {
      const name = pod.metadata?.name ?? '';
      seen.add(name);
      const before = this.pods.get(name);
      this.pods.set(name, pod);
      if (!before) this.emit('ADDED', pod);
      else if (before.metadata?.resourceVersion !== pod.metadata?.resourceVersion) this.emit('MODIFIED', pod);
    }
    for (const [name, pod] of this.pods) {
      if (seen.has(name)) continue;
      this.pods.delete(name);
      this.emit('DELETED', pod);
    }
    this.resourceVersion = resourceVersion;
  }

  private async watch(): Promise<void> {
    if (this.closed) return;
    const k8s = await import('@kubernetes/client-node');
    const path = `/api/v1/namespaces/${this.api.namespace}/pods`;
    const query = { labelSelector: this.selector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS };
    let gone = false;
    const onEvent = (type: string, obj: PodView & { code?: number }) => {
      if (type === 'BOOKMARK') {
        this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
        return;
      }
      if (type === 'ERROR') {
        // 410 Gone: this version is too old to resume from; a new list is the only way on.
        gone = true;
        this.abort?.abort();
        return;
      }
      if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
      this.failures = 0;
      const name = obj.metadata?.name ?? '';
      this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
      if (type === 'DELETED') this.pods.delete(name);
      else this.pods.set(name, obj);
      this.emit(type, obj);
    };
    const onDone = (err: unknown) => {
      if (this.closed) return;
      if (err && !gone) this.failures++;
      this.log.debug({ err: err ? String((err as Error).message ?? err) : undefined, gone }, 'the Pod watch ended; listing again');
      this.again();
    };
    try {
      this.abort = await new k8s.Watch(this.api.config).watch(path, query, onEvent, onDone);
    } catch (err) {
      onDone(err);
    }
  }

  /** List again and watch from there, after a backoff that grows while the server does not answer. */
  private again(): void {
    const delay = this.failures === 0 ? 100 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 6));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.relists++;
      this.sync().then(
        () => {
          this.failures = 0;
          void this.watch();
        },
        (err: unknown) => {
          this.failures++;
          this.log.warn({ err: (err as Error).message, failures: this.failures }, 'listing the plugin Pods failed; trying again');
          this.again();
        },
      );
    }, delay);
    this.timer.unref();
  }

  private emit(type: PodEventType, pod: PodView): void {
    try {
      this.listener(type, pod);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'a Pod event handler failed');
    }
  }
}
