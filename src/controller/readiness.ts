import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Hub } from '../hub/hub.js';
import { EXIT_SIGSYS, KERNEL_RECORD_WAIT_MS, seccompKillMessage, type KernelWatch } from '../violations/kernel-watch.js';
import type { Managed } from './managed.js';

/** A wait for a plugin's hello, cancelled once the start is decided either way. */
export interface ReadyWait {
  readonly promise: Promise<void>;
  cancel(): void;
}

/**
 * Resolves when the hub says the plugin is ready (its hello was accepted); rejects with
 * LM_START_TIMEOUT, with its last output, after `timeoutMs`.
 */
export function waitReady(hub: Hub, m: Managed, timeoutMs: number): ReadyWait {
  const id = m.loaded.manifest.id;
  let cancel = () => {};
  const promise = new Promise<void>((resolve, reject) => {
    const onReady = (readyId: string) => {
      if (readyId === id) resolve();
    };
    const timer = setTimeout(() => {
      const logs = m.logs.tail(20).map((l) => l.text);
      reject(
        new LogoMeshError('LM_START_TIMEOUT', `plugin ${id} did not say hello within ${timeoutMs} ms${logs.length ? `; last output:\n${logs.join('\n')}` : ' and wrote nothing'}`, {
          plugin: id,
          logTail: logs,
        }),
      );
    }, timeoutMs);
    hub.on('ready', onReady);
    cancel = () => {
      clearTimeout(timer);
      hub.off('ready', onReady);
    };
  });
  // A start that fails before it awaits this (the engine refuses the container) cancels
  // it; until then, a timeout nobody awaits must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, cancel };
}

/**
 * Wait for the hello, or fail with why the container ended first: LM_SECCOMP_VIOLATION
 * (audited, with the system call when the kernel log names it) or LM_PLUGIN_EXITED, each
 * with the plugin's last output.
 */
export async function readyOrExit(m: Managed, ready: ReadyWait, exited: Promise<number>, cx: { readonly audit: AuditSink; readonly kernel: KernelWatch | undefined }): Promise<void> {
  await Promise.race([ready.promise, exited.then(async (code) => Promise.reject(await exitedBeforeReady(m, code, cx)))]).finally(() => ready.cancel());
}

async function exitedBeforeReady(m: Managed, code: number, cx: { readonly audit: AuditSink; readonly kernel: KernelWatch | undefined }): Promise<LogoMeshError> {
  const id = m.loaded.manifest.id;
  const logs = m.logs.tail(20).map((l) => l.text);
  // Also called (and ignored) for an exit after ready: the supervisor handles that one.
  if (code === EXIT_SIGSYS && cx.kernel && m.state === 'starting') {
    const kill = await cx.kernel.take(id, m.startedAt ?? 0, KERNEL_RECORD_WAIT_MS);
    const message = seccompKillMessage(id, kill);
    cx.audit({ who: id, action: 'violation', resource: id, result: 'killed', code: 'LM_SECCOMP_VIOLATION', reason: message });
    return new LogoMeshError('LM_SECCOMP_VIOLATION', `${message}${logs.length ? `; last output:\n${logs.join('\n')}` : ''}`, { plugin: id, exitCode: code, logTail: logs, ...(kill ? { syscall: kill.name } : {}) });
  }
  return new LogoMeshError('LM_PLUGIN_EXITED', `plugin ${id} exited with code ${code} before it became ready${logs.length ? `; last output:\n${logs.join('\n')}` : ''}`, {
    plugin: id,
    exitCode: code,
    logTail: logs,
  });
}
