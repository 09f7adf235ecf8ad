import type { ErrorCode } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import { HOST } from './protocol.js';

/** What a plugin may do on the hub, taken from its manifest's `coordination`. */
export interface PluginPolicy {
  readonly id: string;
  /** Methods it serves. */
  readonly exposes: ReadonlySet<string>;
  /** `plugin.method` or host method names it may call. */
  readonly consumes: ReadonlySet<string>;
  /** May it emit events and broadcasts? */
  readonly messaging: boolean;
}

export function policyOf(manifest: Manifest): PluginPolicy {
  const c = manifest.coordination;
  return { id: manifest.id, exposes: new Set(c.exposesMethods), consumes: new Set(c.consumesMethods), messaging: c.messaging };
}

export type Decision = { allowed: true } | { allowed: false; code: ErrorCode; reason: string };

const ALLOW: Decision = { allowed: true };

/**
 * May `caller` call `method` on `target`? Both sides must agree: the caller declares it
 * consumes `target.method` (or the host method), and the target declares it exposes it. The
 * host application is trusted to call anything a plugin exposes.
 */
export function decideCall(caller: PluginPolicy | 'host', target: PluginPolicy | 'host', method: string, hostMethods: ReadonlySet<string>): Decision {
  if (target === HOST) {
    if (caller === HOST) return { allowed: false, code: 'LM_PROTOCOL', reason: 'the host cannot call its own methods through the hub' };
    if (!caller.consumes.has(method)) {
      return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${caller.id} does not list host method '${method}' under coordination.consumesMethods` };
    }
    if (!hostMethods.has(method)) return { allowed: false, code: 'LM_METHOD_NOT_FOUND', reason: `the host has no method '${method}'` };
    return ALLOW;
  }
  if (caller !== HOST && !caller.consumes.has(`${target.id}.${method}`)) {
    return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${caller.id} does not list '${target.id}.${method}' under coordination.consumesMethods` };
  }
  if (!target.exposes.has(method)) {
    return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${target.id} does not list '${method}' under coordination.exposesMethods` };
  }
  return ALLOW;
}

/** May this plugin emit events and broadcasts? */
export function decideMessaging(sender: PluginPolicy | 'host'): Decision {
  if (sender === HOST || sender.messaging) return ALLOW;
  return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${sender.id} does not set coordination.messaging: true` };
}
