import { LogoMeshError } from '../errors.js';
import type { LimitChange } from '../monitor/index.js';
import type { ConsoleHost } from './host.js';
import type { Session } from './sessions.js';

export type ConsoleAction = 'stop' | 'start' | 'restart' | 'revoke' | 'grant' | 'limits';
export const ACTIONS: readonly ConsoleAction[] = ['stop', 'start', 'restart', 'revoke', 'grant', 'limits'];

interface Body {
  kind?: unknown;
  method?: unknown;
  host?: unknown;
  path?: unknown;
  write?: unknown;
  ttlMs?: unknown;
  memoryMB?: unknown;
  cpuPercent?: unknown;
  processes?: unknown;
}

function text(body: Body, field: 'method' | 'host' | 'path', action: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new LogoMeshError('LM_USAGE', `${action} of a ${field} needs '${field}' (a non-empty string)`, { field, expected: 'a string', found: typeof v });
  return v;
}

/**
 * Do one operator action from the console, as the logged-in operator: the audit trail's
 * `who` is `operator (<name>)`. Where the controller's own entry cannot carry the name (a
 * stop, a host grant), the console writes an entry of its own first, so every action is on
 * the trail under a name even when it then fails. Returns what the controller answers.
 */
export async function runAction(host: ConsoleHost, s: Session, id: string, action: ConsoleAction, body: Body): Promise<unknown> {
  const who = `operator (${s.name})`;
  const note = (what: string) => host.audit.record({ who, action, resource: `${id}${what}`, result: 'requested', reason: 'from the console' });
  switch (action) {
    case 'stop':
    case 'start':
    case 'restart':
      host.status(id); // LM_PLUGIN_NOT_FOUND before anything is written
      note('');
      await host[action](id);
      return host.status(id);
    case 'limits': {
      const change: Record<string, number> = {};
      for (const k of ['memoryMB', 'cpuPercent', 'processes'] as const) {
        if (body[k] === undefined || body[k] === null || body[k] === '') continue;
        const n = Number(body[k]);
        if (!Number.isFinite(n)) throw new LogoMeshError('LM_USAGE', `'${k}' must be a number`, { field: k, expected: 'a number', found: String(body[k]) });
        change[k] = n;
      }
      if (Object.keys(change).length === 0) throw new LogoMeshError('LM_USAGE', "limits needs at least one of 'memoryMB', 'cpuPercent', 'processes'", { expected: 'memoryMB, cpuPercent or processes' });
      return { plugin: id, changed: await host.setLimits(id, change as LimitChange, who) };
    }
    case 'revoke':
    case 'grant': {
      const kind = body.kind ?? 'method';
      const ttlMs = body.ttlMs === undefined || body.ttlMs === null || body.ttlMs === '' ? undefined : Number(body.ttlMs);
      if (ttlMs !== undefined && !(ttlMs > 0)) throw new LogoMeshError('LM_USAGE', "'ttlMs' must be a positive number", { field: 'ttlMs', expected: 'a positive number', found: String(body.ttlMs) });
      if (kind === 'method') {
        const method = text(body, 'method', action);
        if (action === 'revoke') host.revokeMethod(id, method, who);
        else host.grantMethod(id, method, ttlMs, who);
        return { plugin: id, method, [action === 'revoke' ? 'revoked' : 'granted']: true };
      }
      if (kind === 'host') {
        const h = text(body, 'host', action);
        note(`:host ${h}`);
        if (action === 'revoke') return { plugin: id, host: h, revoked: true, live: await host.revokeHost(id, h) };
        await host.grantHost(id, h);
        return { plugin: id, host: h, granted: true };
      }
      if (kind === 'path') {
        const p = text(body, 'path', action);
        if (action === 'revoke') return { plugin: id, ...(await host.revokePath(id, p, who)), revoked: true };
        note(`:path ${p}`);
        return { plugin: id, ...(await host.grantPath(id, p, { write: body.write === true, ...(ttlMs !== undefined ? { ttlMs } : {}) })), granted: true };
      }
      throw new LogoMeshError('LM_USAGE', `unknown kind of ${action}: expected method, host or path`, { field: 'kind', expected: 'method | host | path', found: String(kind).slice(0, 40) });
    }
  }
}
