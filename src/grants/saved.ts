import type { PathGrant } from './path-grants.js';

/** A temporary grant (`grant --ttl`) of a method or topic pattern: revoked again at `expiresAt`. */
export interface SavedMethodGrant {
  readonly method: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

export interface SavedTopicGrant {
  readonly topic: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/**
 * The operator's changes to one plugin's permissions, as they stand: what a restarted
 * controller applies again before the plugin can make its first call. Kept in
 * `<home>/state.json` under each plugin's `permissions`. Every field is optional and absent
 * when empty.
 */
export interface SavedPermissions {
  /** Methods taken away with `revoke <plugin> <method>` (or by an expired grant). */
  readonly revokedMethods?: readonly string[];
  /** Methods granted for a time, still running. */
  readonly methodGrants?: readonly SavedMethodGrant[];
  /** Declared topic patterns taken away with `revoke <plugin> topic <pattern>` (or by an expired grant). */
  readonly revokedTopics?: readonly string[];
  /** Topic patterns granted for a time, still running. */
  readonly topicGrants?: readonly SavedTopicGrant[];
  /** Host paths granted with `grant <plugin> path`, as granted (real path of grant time). */
  readonly pathGrants?: readonly PathGrant[];
  /** Manifest hosts taken off the plugin's allow-list with `revoke <plugin> host`. */
  readonly revokedHosts?: readonly string[];
}

/**
 * Read a plugin's saved permissions from the parsed state file. A damaged entry is left out
 * rather than failing the whole record, so that one bad value does not make a controller
 * forget the plugin's other revocations. Undefined when nothing is left.
 */
export function parsePermissions(p: Record<string, unknown>): SavedPermissions | undefined {
  const revokedMethods = strings(p.revokedMethods);
  const methodGrants = timed(p.methodGrants, 'method').map((g) => ({ method: g.name, expiresAt: g.expiresAt }));
  const revokedTopics = strings(p.revokedTopics);
  const topicGrants = timed(p.topicGrants, 'topic').map((g) => ({ topic: g.name, expiresAt: g.expiresAt }));
  const pathGrants = (Array.isArray(p.pathGrants) ? p.pathGrants : []).filter(isPathGrant);
  const revokedHosts = strings(p.revokedHosts);
  return withoutEmpty({ revokedMethods, methodGrants, revokedTopics, topicGrants, pathGrants, revokedHosts });
}

/** The record without its empty lists; undefined when every one is empty. */
export function withoutEmpty(p: { [K in keyof SavedPermissions]-?: NonNullable<SavedPermissions[K]> }): SavedPermissions | undefined {
  const out = Object.fromEntries(Object.entries(p).filter(([, v]) => v.length > 0)) as SavedPermissions;
  return Object.keys(out).length ? out : undefined;
}

function timed(v: unknown, field: 'method' | 'topic'): { name: string; expiresAt: number }[] {
  return (Array.isArray(v) ? v : []).flatMap((g) => (isRecord(g) && isString(g[field]) && Number.isFinite(g.expiresAt) ? [{ name: g[field], expiresAt: g.expiresAt as number }] : []));
}

function isPathGrant(g: unknown): g is PathGrant {
  return (
    isRecord(g) &&
    isString(g.name) &&
    isString(g.requested) &&
    isString(g.hostPath) &&
    isString(g.containerPath) &&
    isString(g.rule) &&
    typeof g.writable === 'boolean' &&
    Number.isFinite(g.grantedAt) &&
    (g.expiresAt === undefined || Number.isFinite(g.expiresAt))
  );
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter(isString) : [];
}

export function isString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
