import type { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import type { KubeApi, KubeResource } from './api.js';
import { RUN_LABEL } from './plugin-objects.js';
import { PLUGIN_CONTAINER, podOutcome, waitingReason, type PodView } from './pod-status.js';
import type { PodEventType, PodWatch } from './pod-watch.js';

/** The lines of an adopted Pod's earlier output brought into the plugin's log buffer (its size). */
const ADOPTED_TAIL_LINES = 1000;

/** How the last exit of a plugin's container ended. */
interface Exit {
  readonly exitCode: number;
  readonly oomKilled: boolean;
  readonly reason: string;
}

/** The plugin Pods of the installation, as one watch sees them, handed to the start each belongs to (by its run label). */
export class PluginPods {
  private readonly runs = new Map<string, PluginWorkload>();
  /** Closed: no log is followed any more, so a controller that leaves its plugins running holds no request open. */
  closed = false;
  watch?: PodWatch;

  /** The watch's listener. */
  readonly onEvent = (type: PodEventType, pod: PodView): void => {
    const run = pod.metadata?.labels?.[RUN_LABEL];
    if (run !== undefined) this.runs.get(run)?.onPod(type, pod);
  };

  of(run: string): PodView[] {
    return (this.watch?.current() ?? []).filter((p) => p.metadata?.labels?.[RUN_LABEL] === run);
  }

  follow(run: string, w: PluginWorkload): void {
    this.runs.set(run, w);
    for (const pod of this.of(run)) w.onPod('ADDED', pod);
  }

  forget(run: string): void {
    this.runs.delete(run);
  }

  /** Stop the watch and every log followed (the plugins run on). */
  close(): void {
    this.closed = true;
    this.watch?.close();
    for (const w of this.runs.values()) w.stopOutput();
  }
}

/**
 * A plugin on Kubernetes as the controller's supervisor follows a container: one start's
 * Deployment (its Pods carry the start's run label). It has exited when its container has
 * (a terminated state, or a restart the kubelet already made, with the exit in lastState),
 * when its Pod failed (evicted), or when its Pod was deleted under it (its node was lost, or
 * someone deleted it). OOM kills are the kubelet's `OOMKilled` reason. The watch that feeds it
 * lists again after every drop, so `wait()` never rejects: an API server that does not answer
 * only delays the news.
 */
export class PluginWorkload {
  readonly id: string;
  private readonly exited: Promise<number>;
  private resolveExit!: (code: number) => void;
  private last?: Exit;
  /** Restarts of each Pod's container already accounted for (an adopted Pod's earlier ones). */
  private readonly seen = new Map<string, number>();
  private removal?: Promise<void>;
  private waitingNoted?: string;
  /** Where its output goes (a new stream into the plugin's log buffer for each Pod: a log's end ends its stream), and the Pods whose log is followed. */
  private output?: () => Writable;
  private adopted = false;
  private readonly logs = new Map<string, Promise<AbortController | undefined>>();

  constructor(
    private readonly api: KubeApi,
    private readonly pods: PluginPods,
    readonly name: string,
    readonly run: string,
    private readonly log: Logger,
  ) {
    this.id = `${name}/${run}`;
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  /**
   * Start following its Pods, and their output into a stream from `output`; an adopted
   * one's earlier restarts are not exits of this controller's watch.
   */
  follow(adopted: boolean, output?: () => Writable): void {
    if (output) this.output = output;
    this.adopted = adopted;
    if (adopted) for (const pod of this.pods.of(this.run)) this.seen.set(pod.metadata?.name ?? '', podRestarts(pod));
    this.pods.follow(this.run, this);
  }

  onPod(type: PodEventType, pod: PodView): void {
    const name = pod.metadata?.name ?? '';
    if (type === 'DELETED') return this.ended({ exitCode: -1, oomKilled: false, reason: `its Pod ${name} was deleted (evicted, its node lost, or deleted by hand)` });
    this.followOutput(pod);
    const outcome = podOutcome(pod, this.seen.get(name) ?? 0);
    if (outcome.state === 'exited') {
      this.seen.set(name, outcome.restarts);
      return this.ended({ exitCode: outcome.exitCode, oomKilled: outcome.oomKilled, reason: outcome.reason });
    }
    const waiting = waitingReason(pod);
    if (waiting && waiting !== this.waitingNoted) {
      this.waitingNoted = waiting;
      this.log.warn({ pod: name, reason: waiting }, `the plugin's Pod waits: ${waiting}`);
    }
  }

  /**
   * Follow the plugin container's log of a Pod once it runs (`logomesh logs`), once per Pod:
   * the log ends with the container, and a restarted container is an exit anyway. A log that
   * cannot be followed is said in the controller's log; the plugin runs on.
   */
  private followOutput(pod: PodView): void {
    const name = pod.metadata?.name;
    const output = this.output;
    const running = pod.status?.containerStatuses?.some((c) => c.name === PLUGIN_CONTAINER && c.state?.running);
    if (!output || !name || !running || this.logs.has(name) || this.removal || this.pods.closed) return;
    // An adopted Pod's output so far was an earlier controller's: only its end, as much as the buffer keeps.
    const following = this.api.followLog(name, PLUGIN_CONTAINER, output(), this.adopted ? ADOPTED_TAIL_LINES : undefined).catch((err: unknown) => {
      this.log.warn({ pod: name, err: (err as Error).message }, "the plugin's output cannot be followed (logomesh logs shows none of it)");
      return undefined;
    });
    this.logs.set(name, following);
  }

  /** End every log followed (at its removal, or the controller closing); a follow still starting ends once it has. */
  stopOutput(): void {
    for (const following of this.logs.values()) void following.then((c) => c?.abort());
  }

  wait(): Promise<number> {
    return this.exited;
  }

  async oomKilled(): Promise<boolean> {
    return this.last?.oomKilled ?? false;
  }

  /** Why it ended, in the kubelet's words (OOMKilled, Error, Evicted, ...). */
  exitReason(): string | undefined {
    return this.last?.reason;
  }

  /** Scale to zero and delete its Pods with `graceSeconds` (SIGTERM, then SIGKILL), then wait for them to go. */
  async stop(graceSeconds: number): Promise<void> {
    await this.api.scale(this.name, 0);
    await Promise.all(this.pods.of(this.run).map((p) => this.api.remove({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name ?? '' } }, graceSeconds)));
    await this.gone((graceSeconds + 10) * 1000);
  }

  kill(): Promise<void> {
    return this.stop(0);
  }

  /** Delete the Deployment (its Pods go with it); idempotent. */
  remove(): Promise<void> {
    this.removal ??= this.api.remove({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: this.name } }).finally(() => {
      this.pods.forget(this.run);
      this.stopOutput();
    });
    return this.removal;
  }

  async probe(): Promise<{ state: 'running' } | { state: 'exited'; exitCode: number } | { state: 'gone' }> {
    const deployment = await this.api.read<KubeResource>({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: this.name } });
    if (!deployment) return { state: 'gone' };
    return this.last ? { state: 'exited', exitCode: this.last.exitCode } : { state: 'running' };
  }

  private ended(exit: Exit): void {
    if (this.last) return;
    this.last = exit;
    this.log.info({ deployment: this.name, exitCode: exit.exitCode, reason: exit.reason }, 'the plugin container ended');
    this.resolveExit(exit.exitCode);
  }

  /** Until the watch has seen every Pod of this start go, or `ms` passed. */
  private async gone(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.pods.of(this.run).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  }
}

function podRestarts(pod: PodView): number {
  return pod.status?.containerStatuses?.find((c) => c.name === 'plugin')?.restartCount ?? 0;
}
