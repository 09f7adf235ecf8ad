import type { AuditRow } from './audit-search.js';

/** One event of the "why it stopped" timeline, in plain words, tied to its audit entry by `ref`. */
export interface TimelineEvent {
  readonly time: number;
  readonly plugin: string;
  readonly kind: 'violation' | 'kill' | 'crash' | 'restart' | 'start' | 'stop' | 'refusal' | 'permission' | 'limit';
  /** What happened and why, in words. */
  readonly cause: string;
  /** What LogoMesh did about it. */
  readonly action: string;
  readonly code?: string;
  readonly ref: string;
}

/** Codes in plain words: what the operator should read first. */
const CAUSES: Record<string, string> = {
  LM_RESOURCE_MEMORY: 'ran out of memory: the kernel killed it (OOM) at its memory limit',
  LM_RESOURCE_EXCEEDED: 'went over a resource limit, and the resource monitor killed it',
  LM_PLUGIN_EXITED: 'its process exited on its own',
  LM_SECCOMP_VIOLATION: 'made a forbidden system call, and the kernel killed it',
  LM_SANDBOX_DENIED: 'tried something the sandbox forbids, and the kernel refused it',
  LM_HEALTH_CHECK: 'stopped answering its health check',
  LM_PERMISSION_DENIED: 'asked for something its permissions do not allow',
  LM_RATE_LIMITED: 'sent messages faster than its rate limit',
  LM_EGRESS: 'lost its egress proxy',
  LM_RESTART_LIMIT: 'failed too many times in a row',
};

/**
 * The timeline of the audit rows given (newest first, as searchAudit returns them): the
 * entries that say why a plugin stopped or was refused, each with its cause and the action
 * taken. Entries that are not about stopping or refusing (allowed calls, checks) are left out.
 */
export function timeline(rows: readonly AuditRow[]): TimelineEvent[] {
  const out: TimelineEvent[] = [];
  for (const e of rows) {
    const ev = toEvent(e);
    if (ev) out.push(ev);
  }
  return out;
}

function toEvent(e: AuditRow): TimelineEvent | undefined {
  const base = { time: e.time, ref: e.ref, ...(e.code ? { code: e.code } : {}) };
  const words = (e.code && CAUSES[e.code]) ?? '';
  const detail = e.reason ? (words ? `${words} (${e.reason})` : e.reason) : words || `${e.action} ${e.resource}`;
  const pluginOf = (s: string) => s.split(/[.:]/)[0] ?? s;
  switch (e.action) {
    case 'violation': {
      const plugin = e.who === 'controller' || e.who === 'host' ? pluginOf(e.resource) : e.who;
      if (e.result === 'failed') return { ...base, plugin, kind: e.code === 'LM_PLUGIN_EXITED' ? 'crash' : 'kill', cause: detail, action: 'container removed; restarted if its restart policy allows' };
      if (e.result === 'killed') return { ...base, plugin, kind: 'kill', cause: detail, action: 'killed' };
      return { ...base, plugin, kind: 'violation', cause: detail, action: e.result === 'alert' ? 'alert only' : e.result === 'enforced' ? 'limit enforced' : e.result };
    }
    case 'start':
      if (e.who.startsWith('operator')) return { ...base, plugin: pluginOf(e.resource), kind: 'start', cause: `start requested by ${e.who}`, action: e.result };
      if (e.result === 'failed') return { ...base, plugin: pluginOf(e.resource), kind: 'crash', cause: `failed to start: ${detail}`, action: 'start abandoned' };
      return { ...base, plugin: pluginOf(e.resource), kind: 'start', cause: 'started', action: e.result };
    case 'stop':
      return { ...base, plugin: pluginOf(e.resource), kind: 'stop', cause: e.who.startsWith('operator') ? `stopped by ${e.who}` : `stopped by ${e.who}${e.reason ? `: ${e.reason}` : ''}`, action: e.result };
    case 'restart':
      if (e.who.startsWith('operator')) return { ...base, plugin: pluginOf(e.resource), kind: 'restart', cause: `restart requested by ${e.who}`, action: e.result };
    // falls through
    case 'recreate':
    case 'give-up':
    case 'quarantine':
      return { ...base, plugin: e.who === 'controller' || e.who.startsWith('operator') ? pluginOf(e.resource) : e.who, kind: 'restart', cause: detail, action: e.action === 'give-up' ? 'gave up restarting' : e.action };
    case 'revoke':
    case 'grant':
      return { ...base, plugin: pluginOf(e.resource), kind: 'permission', cause: `${e.resource} ${e.action === 'revoke' ? 'revoked' : 'granted'} by ${e.who}${e.reason ? `: ${e.reason}` : ''}`, action: e.result };
    case 'limit':
      return { ...base, plugin: pluginOf(e.resource), kind: 'limit', cause: `${e.resource} changed by ${e.who}${e.reason ? `: ${e.reason}` : ''}`, action: e.result };
    default:
      if (e.result === 'denied') return { ...base, plugin: e.who, kind: 'refusal', cause: `${e.action} ${e.resource} refused${e.reason ? `: ${e.reason}` : words ? `: ${words}` : ''}`, action: 'refused' };
      return undefined;
  }
}
