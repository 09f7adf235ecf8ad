/**
 * What a plugin Pod's status says of the plugin, as the Docker backend says it of a
 * container: running, or ended with an exit code (and whether the kernel's OOM killer ended
 * it). Pure: the Pod as the API server sends it in, the outcome out.
 */

/** The fields of a Pod the backend reads (the API's JSON, untyped beyond these). */
export interface PodView {
  readonly metadata?: { readonly name?: string; readonly labels?: Record<string, string>; readonly deletionTimestamp?: unknown; readonly resourceVersion?: string };
  readonly status?: {
    readonly phase?: string;
    readonly reason?: string;
    readonly message?: string;
    readonly containerStatuses?: readonly ContainerStatusView[];
  };
}

interface Terminated {
  readonly exitCode?: number;
  readonly reason?: string;
  readonly signal?: number;
}

interface ContainerStatusView {
  readonly name?: string;
  readonly restartCount?: number;
  readonly state?: { readonly running?: object; readonly terminated?: Terminated; readonly waiting?: { readonly reason?: string } };
  readonly lastState?: { readonly terminated?: Terminated };
}

/** The plugin's container in the rendered Pod (kubernetes/plugin-workload.ts). */
export const PLUGIN_CONTAINER = 'plugin';

export type PodOutcome =
  | { readonly state: 'pending' }
  | { readonly state: 'running'; readonly restarts: number }
  | { readonly state: 'exited'; readonly exitCode: number; readonly oomKilled: boolean; readonly reason: string; readonly restarts: number };

/**
 * The plugin's state in this Pod. `seenRestarts` is how many restarts of its container were
 * already known: the kubelet restarts an exited container at once (the Deployment's
 * restartPolicy is Always), so an exit is often seen only as a higher `restartCount` with the
 * exit in `lastState`. An evicted Pod (phase Failed) has ended without a container exit: -1.
 */
export function podOutcome(pod: PodView, seenRestarts: number): PodOutcome {
  const status = pod.status ?? {};
  const c = status.containerStatuses?.find((s) => s.name === PLUGIN_CONTAINER);
  const restarts = c?.restartCount ?? 0;
  const ended = c?.state?.terminated ?? (restarts > seenRestarts ? c?.lastState?.terminated : undefined);
  if (ended) return exited(ended, restarts);
  if (status.phase === 'Failed' || status.phase === 'Succeeded') {
    return { state: 'exited', exitCode: status.phase === 'Succeeded' ? 0 : -1, oomKilled: false, reason: status.reason ?? status.phase, restarts };
  }
  if (c?.state?.running) return { state: 'running', restarts };
  return { state: 'pending' };
}

function exited(t: Terminated, restarts: number): PodOutcome {
  // A container killed by a signal without an exit code of its own is reported 128 + signal, as Docker does.
  const exitCode = t.exitCode ?? (t.signal !== undefined ? 128 + t.signal : -1);
  return { state: 'exited', exitCode, oomKilled: t.reason === 'OOMKilled', reason: t.reason ?? `exit code ${exitCode}`, restarts };
}

/** Why a Pod waits, when it is a reason to tell (an image that cannot be pulled, a missing Secret or profile). */
export function waitingReason(pod: PodView): string | undefined {
  const c = pod.status?.containerStatuses?.find((s) => s.name === PLUGIN_CONTAINER);
  const reason = c?.state?.waiting?.reason;
  return reason && reason !== 'ContainerCreating' ? reason : undefined;
}
