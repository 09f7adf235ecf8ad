import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkWritableGrants } from '../sandbox/writable-grants.js';
import type { ExpiryTimers } from './expiry.js';
import { GRANTS_MOUNT } from '../sandbox/container-mounts.js';
import { parseGrantTarget, realPathOf, recheckGrant, type PathGrant } from './path-grants.js';
import { grantRule, type PathGrantContext } from './path-rule.js';

/**
 * Host paths the operator granted, per plugin and name (mounted at /grants/<name>), with
 * their expiry timers. Every grant, refusal, revocation and mount check is audited as
 * `<plugin>:path:<name>`. What a grant does to a running container is the controller's.
 */
export class PathGrants {
  private readonly grants = new Map<string, Map<string, PathGrant>>();

  constructor(
    private readonly opts: {
      readonly audit: AuditSink;
      readonly log: Logger;
      readonly timers: ExpiryTimers;
      /** A temporary grant ran out: revoke it, with what that does to the container. */
      readonly onExpired: (pluginId: string, name: string) => void;
    },
  ) {}

  of(pluginId: string): PathGrant[] {
    return [...(this.grants.get(pluginId)?.values() ?? [])];
  }

  get(pluginId: string, name: string): PathGrant | undefined {
    return this.grants.get(pluginId)?.get(name);
  }

  /** Check and record a grant (a grant of the same name replaces the earlier one). Throws, audited, what grantRule throws. */
  grant(cx: PathGrantContext, target: string, opts: { write?: boolean; ttlMs?: number }): PathGrant {
    const pluginId = cx.loaded.manifest.id;
    const writable = opts.write === true;
    let grant: PathGrant;
    try {
      const { requested, name } = parseGrantTarget(target);
      const real = realPathOf(requested);
      const rule = grantRule(cx, real, name, writable);
      const now = Date.now();
      grant = Object.freeze({
        name,
        requested,
        hostPath: real,
        writable,
        containerPath: `${GRANTS_MOUNT}/${name}`,
        grantedAt: now,
        ...(opts.ttlMs !== undefined ? { expiresAt: now + opts.ttlMs } : {}),
        rule,
      });
    } catch (err) {
      const e = err as LogoMeshError;
      this.opts.audit({ who: 'operator', action: 'grant', resource: `${pluginId}:path:${target}`, result: 'denied', code: e.code, reason: e.message });
      throw err;
    }
    this.put(pluginId, grant);
    this.opts.audit({
      who: 'operator',
      action: 'grant',
      resource: `${pluginId}:path:${grant.name}`,
      result: 'granted',
      reason: `${grant.hostPath} at ${grant.containerPath} (${writable ? 'rw' : 'ro'}${opts.ttlMs !== undefined ? `, for ${opts.ttlMs} ms` : ''}; policy rule ${grant.rule})`,
    });
    return grant;
  }

  /** Remove a grant, by name or by the host path given. Throws LM_GRANT_PATH (audited) when there is none. */
  take(pluginId: string, nameOrPath: string, who: string): PathGrant {
    const grants = this.grants.get(pluginId);
    const g = grants?.get(nameOrPath) ?? [...(grants?.values() ?? [])].find((x) => x.requested === path.resolve(nameOrPath) || x.hostPath === nameOrPath);
    if (!g) {
      const err = new LogoMeshError('LM_GRANT_PATH', `plugin ${pluginId} has no granted path '${nameOrPath}' (granted: ${[...(grants?.keys() ?? [])].join(', ') || 'none'})`, {
        plugin: pluginId,
        expected: 'the name or host path of a path granted to it',
        found: nameOrPath,
      });
      this.opts.audit({ who, action: 'revoke', resource: `${pluginId}:path:${nameOrPath}`, result: 'denied', code: err.code, reason: err.message });
      throw err;
    }
    grants!.delete(g.name);
    this.opts.timers.cancel(timerKey(pluginId, g.name));
    return g;
  }

  /** The revocation on the record, once the plugin's access has ended (`how` says when). */
  revoked(pluginId: string, g: PathGrant, who: string, how: string): void {
    this.opts.audit({ who, action: 'revoke', resource: `${pluginId}:path:${g.name}`, result: 'revoked', reason: `${g.hostPath} at ${g.containerPath} (${g.writable ? 'rw' : 'ro'}); ${how}` });
  }

  /**
   * A grant saved by an earlier controller of this home. Everything is derived again from
   * what the operator gave and checked as at grant time, so a state file edited by hand
   * cannot mount more than the policy allows; one that fails now, or ran out while no
   * controller ran, is dropped. Audited either way.
   */
  restore(cx: PathGrantContext, saved: PathGrant, why: string): void {
    const id = cx.loaded.manifest.id;
    const resource = `${id}:path:${saved.name}`;
    if (saved.expiresAt !== undefined && saved.expiresAt <= Date.now()) {
      this.opts.audit({
        who: 'expiry',
        action: 'revoke',
        resource,
        result: 'revoked',
        reason: `${saved.hostPath} at ${saved.containerPath}; the grant ran out at ${new Date(saved.expiresAt).toISOString()}, while no controller ran`,
      });
      return;
    }
    let grant: PathGrant;
    try {
      const { requested, name } = parseGrantTarget(`${saved.requested}:${saved.name}`);
      const g: PathGrant = {
        name,
        requested,
        hostPath: saved.hostPath,
        writable: saved.writable,
        containerPath: `${GRANTS_MOUNT}/${name}`,
        grantedAt: saved.grantedAt,
        ...(saved.expiresAt !== undefined ? { expiresAt: saved.expiresAt } : {}),
        rule: saved.rule,
      };
      recheckGrant(id, g); // throws LM_GRANT_PATH: the path resolves elsewhere now
      grant = Object.freeze({ ...g, rule: grantRule(cx, g.hostPath, g.name, g.writable) });
    } catch (err) {
      const e = err as LogoMeshError;
      this.opts.audit({ who: 'controller', action: 'grant', resource, result: 'denied', code: e.code ?? 'LM_GRANT_PATH', reason: `not restored after a controller restart: ${e.message}` });
      this.opts.log.warn({ plugin: id, grant: saved.name, code: e.code }, `a path grant was not restored: ${e.message}`);
      return;
    }
    this.put(id, grant);
    this.opts.audit({ who: 'controller', action: 'grant', resource, result: 'granted', reason: `${grant.hostPath} at ${grant.containerPath} (${grant.writable ? 'rw' : 'ro'}); ${why}` });
  }

  /**
   * Resolve every grant of a plugin again right before its container is created, and
   * compare with grant time (a symlink on the way may have been swapped). Each check is
   * audited (`mount`). Throws LM_GRANT_PATH or LM_PATH_NOT_WRITABLE.
   */
  recheck(pluginId: string, uid: number, gid: number): PathGrant[] {
    const grants = this.of(pluginId);
    for (const g of grants) {
      try {
        recheckGrant(pluginId, g);
        if (g.writable) checkWritableGrants([{ capability: `grant ${g.name}`, hostPath: g.hostPath, relative: g.name, writable: true }], uid, gid);
      } catch (err) {
        const e = err as LogoMeshError;
        this.opts.audit({ who: 'controller', action: 'mount', resource: `${pluginId}:path:${g.name}`, result: 'denied', code: e.code, reason: e.message });
        throw err;
      }
      this.opts.audit({ who: 'controller', action: 'mount', resource: `${pluginId}:path:${g.name}`, result: 'allowed', reason: `${g.hostPath} at ${g.containerPath} (${g.writable ? 'rw' : 'ro'})` });
    }
    return grants;
  }

  private put(pluginId: string, grant: PathGrant): void {
    let grants = this.grants.get(pluginId);
    if (!grants) this.grants.set(pluginId, (grants = new Map()));
    grants.set(grant.name, grant);
    this.opts.timers.cancel(timerKey(pluginId, grant.name));
    if (grant.expiresAt !== undefined) this.opts.timers.schedule(timerKey(pluginId, grant.name), grant.expiresAt, () => this.opts.onExpired(pluginId, grant.name));
  }
}

function timerKey(pluginId: string, name: string): string {
  return `${pluginId}:path:${name}`;
}
