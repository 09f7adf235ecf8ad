import type { Logger } from '../log.js';
import { PLUGIN_IDS, pluginGid } from '../runtimes/runtime.js';
import { EXIT_SIGSYS, KernelWatch, seccompKillMessage } from '../violations/kernel-watch.js';

export { EXIT_SIGSYS };

/** Why plugins of one-shot runs were killed by seccomp, named from the kernel's records. */
export interface SeccompKills {
  /** What killed the plugin's process (started at `startedAt`, ms since the epoch), with the system call when the kernel named it. */
  explain(pluginId: string, startedAt: number): Promise<string>;
  close(): void;
}

/**
 * Follow the kernel's records of seccomp kills for these plugins under `instance` (their own
 * groups), so that a run whose plugin exits with EXIT_SIGSYS can say which system call it
 * made. Without a readable kernel log, the explanation says the call is unknown.
 */
export function followSeccompKills(opts: { readonly log: Logger; readonly instance: string; readonly plugins: readonly string[] }): SeccompKills {
  // The kernel log is read only for an exit by SIGSYS (onDemand): a run that ends otherwise reads none of it.
  const watch = new KernelWatch({ log: opts.log, uid: PLUGIN_IDS, onDemand: true, ownerOf: (kill) => opts.plugins.find((id) => pluginGid(opts.instance, id) === kill.gid) });
  return {
    explain: async (pluginId, startedAt) => seccompKillMessage(pluginId, await watch.take(pluginId, startedAt, 1_000)),
    close: () => watch.close(),
  };
}
