import type { ErrorCode } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import { compileMethodSchemas, type MethodValidators } from './method-schemas.js';
import { HOST } from './protocol.js';
import { topicCovers } from '../manifest/topics.js';

/** What a plugin may do on the hub, taken from its manifest's `coordination`. */
export interface PluginPolicy {
  readonly id: string;
  /** Methods it serves. */
  readonly exposes: ReadonlySet<string>;
  /** `plugin.method` or host method names it may call. */
  readonly consumes: ReadonlySet<string>;
  /** May it emit events and broadcasts? */
  readonly messaging: boolean;
  /** Topic patterns it may publish under, and subscribe to (coordination.publishes, .subscribes). */
  readonly publishes: readonly string[];
  readonly subscribes: readonly string[];
  /** Does its manifest set coordination.sharedMemory (the pool is mounted in its container, and it may use segments)? */
  readonly sharedMemory?: boolean;
  /** The compiled schemas of its exposed methods' params and results (coordination.methodSchemas). */
  readonly schemas?: ReadonlyMap<string, MethodValidators>;
}

export function policyOf(manifest: Manifest): PluginPolicy {
  const c = manifest.coordination;
  return { id: manifest.id, exposes: new Set(c.exposesMethods), consumes: new Set(c.consumesMethods), messaging: c.messaging, publishes: c.publishes, subscribes: c.subscribes, sharedMemory: c.sharedMemory, schemas: compileMethodSchemas(c.methodSchemas) };
}

/** Is a declared topic pattern taken away by the operator? */
export type TopicRevoked = (pluginId: string, declared: string) => boolean;

export type Decision = { allowed: true } | { allowed: false; code: ErrorCode; reason: string };

const ALLOW: Decision = { allowed: true };

/**
 * May `caller` call `method` on `target`? Both sides must agree: the caller declares it
 * consumes `target.method` (or the host method), and the target declares it exposes it. The
 * host application is trusted to call anything a plugin exposes.
 */
/** `resource`: `target.method` when the caller has it at hand (peer-tally.ts), so a call builds no string for the check. */
export function decideCall(caller: PluginPolicy | 'host', target: PluginPolicy | 'host', method: string, hostMethods: ReadonlySet<string>, resource?: string): Decision {
  if (target === HOST) {
    if (caller === HOST) return { allowed: false, code: 'LM_PROTOCOL', reason: 'the host cannot call its own methods through the hub' };
    if (!caller.consumes.has(method)) {
      return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${caller.id} does not list host method '${method}' under coordination.consumesMethods` };
    }
    if (!hostMethods.has(method)) return { allowed: false, code: 'LM_METHOD_NOT_FOUND', reason: `the host has no method '${method}'` };
    return ALLOW;
  }
  if (caller !== HOST && !caller.consumes.has(resource ?? `${target.id}.${method}`)) {
    return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${caller.id} does not list '${target.id}.${method}' under coordination.consumesMethods` };
  }
  if (!target.exposes.has(method)) {
    return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${target.id} does not list '${method}' under coordination.exposesMethods` };
  }
  return ALLOW;
}

/**
 * Topics under this prefix are the controller's own (resource violations:
 * `logomesh.resource.violation.<plugin>`): only the host publishes them, so a plugin that
 * hears one knows it is not another plugin's forgery.
 */
export const RESERVED_TOPIC_PREFIX = 'logomesh.';

/**
 * May this plugin publish under `topic`? It must set `messaging: true` and list a pattern
 * covering the topic under `publishes` that the operator has not revoked. A broadcast
 * without a topic is the host's alone, as are topics under `logomesh.`. The host publishes anything.
 */
export function decidePublish(sender: PluginPolicy | 'host', type: 'event' | 'broadcast', topic: string | undefined, revoked: TopicRevoked): Decision {
  if (sender === HOST) return ALLOW;
  if (!sender.messaging) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${sender.id} does not set coordination.messaging: true` };
  if (topic === undefined) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${sender.id} sent a broadcast without a topic; only the host may (give it a topic listed under coordination.publishes)` };
  if (topic.startsWith(RESERVED_TOPIC_PREFIX)) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${sender.id} may not publish '${topic}': topics under '${RESERVED_TOPIC_PREFIX}' are the controller's own` };
  const d = declaredFor(sender, 'publishes', topic, revoked);
  return d.allowed ? ALLOW : { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${sender.id} may not publish '${topic}': ${d.why}` };
}

/** May this plugin subscribe to `pattern`? Its `subscribes` must cover the whole pattern. The host subscribes to anything. */
export function decideSubscribe(subscriber: PluginPolicy | 'host', pattern: string, revoked: TopicRevoked): Decision {
  if (subscriber === HOST) return ALLOW;
  const d = declaredFor(subscriber, 'subscribes', pattern, revoked);
  return d.allowed ? ALLOW : { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${subscriber.id} may not subscribe to '${pattern}': ${d.why}` };
}

/** May this plugin receive a message of `topic` (checked at every delivery, so a revocation bites on the next one)? */
export function mayReceive(recipient: PluginPolicy, topic: string, revoked: TopicRevoked): boolean {
  return declaredFor(recipient, 'subscribes', topic, revoked).allowed;
}

function declaredFor(p: PluginPolicy, field: 'publishes' | 'subscribes', target: string, revoked: TopicRevoked): { allowed: true } | { allowed: false; why: string } {
  let revokedMatch: string | undefined;
  for (const declared of p[field]) {
    if (!topicCovers(declared, target)) continue;
    if (!revoked(p.id, declared)) return { allowed: true };
    revokedMatch ??= declared;
  }
  if (revokedMatch) return { allowed: false, why: `the operator revoked '${revokedMatch}'` };
  return { allowed: false, why: `no pattern under coordination.${field} covers it (listed: ${p[field].join(', ') || 'none'})` };
}
