import type { SeccompKill } from '../violations/audit-records.js';
import { EXIT_SIGSYS, KERNEL_RECORD_WAIT_MS, seccompKillMessage } from '../violations/kernel-watch.js';
import type { Workload } from './backend.js';
import type { ControllerContext } from './context.js';
import type { Managed } from './managed.js';

/** 128 + SIGKILL: how a process the OOM killer ended exits. */
const EXIT_SIGKILL = 137;
/**
 * How long an exit by SIGKILL waits for the kernel's OOM notification that has not come yet
 * (the monitor's detection p99 is about 5 ms, and it fires before the process is gone).
 */
const OOM_NOTICE_WAIT_MS = 100;

/** Why a plugin's container ended, as the supervisor reports it, and what the restart policy needs of it. */
export interface ExitVerdict {
  readonly error: { code: string; message: string };
  /** Exit code 0, not killed for memory. */
  readonly cleanExit: boolean;
  /** Killed by seccomp: never restarted. */
  readonly quarantine: boolean;
}

/**
 * Did the kernel's OOM killer end this container? The kernel's own record, through the
 * resource monitor, where the engine's flag lags: with it, the engine is looked at once, not
 * for up to two seconds (plugin-container.ts oomKilled).
 */
export async function oomAtExit(cx: ControllerContext, id: string, container: Workload, code: number): Promise<boolean | undefined> {
  const kernel = await cx.monitoring.oomKillAtExit(id, container.id, code === EXIT_SIGKILL ? OOM_NOTICE_WAIT_MS : 0);
  let oom: boolean | undefined;
  try {
    oom = await container.oomKilled(code, kernel === undefined);
  } catch {
    // Already removed by a stop.
  }
  return kernel === true && code === EXIT_SIGKILL ? true : oom;
}

/** The verdict of a seccomp kill, with the system call when the kernel log named it. */
export function seccompVerdict(id: string, kill: SeccompKill | undefined): ExitVerdict {
  return { error: { code: 'LM_SECCOMP_VIOLATION', message: seccompKillMessage(id, kill) }, cleanExit: false, quarantine: true };
}

/**
 * Why the container ended with `code`, in this order: seccomp (its kernel record waited for,
 * looked up since `sinceMs`, the container's start), the resource monitor's kill, the OOM
 * killer, the exit code. Undefined when `still()` says after the wait for the kernel record
 * that the plugin has moved on (the record was read meanwhile and the plugin stopped for it).
 */
export async function exitVerdict(cx: ControllerContext, m: Managed, container: Workload, code: number, oom: boolean | undefined, sinceMs: number, still: () => boolean): Promise<ExitVerdict | undefined> {
  const id = m.loaded.manifest.id;
  if (code === EXIT_SIGSYS && !oom) {
    const kill = await cx.kernel?.take(id, sinceMs, KERNEL_RECORD_WAIT_MS);
    return still() ? seccompVerdict(id, kill) : undefined;
  }
  const killed = cx.monitoring.takeKill(id, container.id);
  if (killed) return { error: { code: 'LM_RESOURCE_EXCEEDED', message: `plugin ${id} was killed by the resource monitor: ${killed.detail}` }, cleanExit: false, quarantine: false };
  const memoryMB = m.liveLimits?.memoryMB ?? m.loaded.manifest.resources.maxMemoryMB;
  const reason = oom ? `exceeded its memory limit of ${memoryMB} MB and was killed` : `exited with code ${code}`;
  return { error: { code: oom ? 'LM_RESOURCE_MEMORY' : 'LM_PLUGIN_EXITED', message: `plugin ${id} ${reason}` }, cleanExit: code === 0 && !oom, quarantine: false };
}
