import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import { PLUGIN_IDS, pluginGid } from '../runtimes/runtime.js';
import type { KernelDenial, SeccompKill } from '../violations/audit-records.js';
import { kernelDenialMessage, KernelWatch } from '../violations/kernel-watch.js';

/**
 * Follow the kernel's records of this controller's plugin processes, in the kernel log and
 * the audit daemon's: a seccomp kill goes to `onKill` (the supervisor stops the plugin); a
 * refusal that a LogoMesh kernel audit rule reports is audited on the plugin's record, at
 * most once a second per rule and path (the refusal itself already happened; the plugin
 * goes on). When neither log is readable, it says what that costs.
 */
export function watchKernel(opts: {
  readonly log: Logger;
  readonly audit: AuditSink;
  readonly instance: string;
  readonly pluginIds: () => readonly string[];
  readonly onKill: (plugin: string, kill: SeccompKill) => void;
}): KernelWatch {
  const deniedAt = new Map<string, number>();
  const onDenial = (plugin: string, d: KernelDenial) => {
    const key = `${plugin}|${d.key}|${d.paths[0] ?? ''}`;
    const now = Date.now();
    if (now - (deniedAt.get(key) ?? 0) < 1_000) return;
    if (deniedAt.size > 1_000) deniedAt.clear();
    deniedAt.set(key, now);
    opts.audit({ who: plugin, action: 'violation', resource: d.paths[0] ?? plugin, result: 'denied', code: 'LM_SANDBOX_DENIED', reason: kernelDenialMessage(d) });
  };
  const kernel = new KernelWatch({
    log: opts.log,
    uid: PLUGIN_IDS,
    ownerOf: (kill) => opts.pluginIds().find((id) => pluginGid(opts.instance, id) === kill.gid),
    onKill: opts.onKill,
    onDenial,
    // Where the audit daemon's log is seen from here (a controller in a container mounts the host's).
    ...(process.env.LOGOMESH_AUDIT_LOG ? { auditLog: process.env.LOGOMESH_AUDIT_LOG } : {}),
  });
  if (kernel.unavailable) opts.log.info({ reason: kernel.unavailable }, "neither the kernel log nor the audit daemon's is readable: a plugin killed by seccomp is reported without the system call it made, and refusals inside the sandbox are not reported");
  return kernel;
}
