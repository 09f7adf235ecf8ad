import { realpathSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { GRANTS_MOUNT } from '../sandbox/container-mounts.js';

/**
 * Host paths the operator grants a running controller's plugin (`logomesh grant <plugin>
 * path <host-path>[:<container-path>]`), outside its plugin folder and only where the
 * policy's hostPaths allow. Each is mounted at /grants/<name>. The path is resolved to its
 * real path when granted and again right before each container is created; if the two
 * differ (a symlink on the way was swapped), the container is not created.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface PathGrant {
  readonly name: string;
  /** The host path as the operator gave it (absolute). */
  readonly requested: string;
  /** Its real path at grant time: what is mounted. */
  readonly hostPath: string;
  readonly writable: boolean;
  /** Where the container sees it: /grants/<name>. */
  readonly containerPath: string;
  readonly grantedAt: number;
  readonly expiresAt?: number;
  /** The policy rule that allows it: `<policy file> /hostPaths/<i>`. */
  readonly rule: string;
}

/**
 * Split `<host-path>[:<container-path>]`. The container path is `/grants/<name>` or just
 * `<name>`; without it the name is the host path's last segment. Throws LM_GRANT_PATH.
 */
export function parseGrantTarget(spec: string): { requested: string; name: string } {
  const colon = spec.lastIndexOf(':');
  const hostPart = colon > 0 ? spec.slice(0, colon) : spec;
  const containerPart = colon > 0 ? spec.slice(colon + 1) : undefined;
  if (!path.isAbsolute(hostPart)) {
    throw new LogoMeshError('LM_GRANT_PATH', `a path grant needs an absolute host path, found '${hostPart}'`, { expected: 'an absolute host path', found: hostPart });
  }
  let name = containerPart ?? path.basename(path.resolve(hostPart));
  if (containerPart !== undefined && containerPart.startsWith('/')) {
    const rel = path.posix.relative(GRANTS_MOUNT, path.posix.normalize(containerPart));
    if (rel.startsWith('..') || rel.includes('/') || rel === '') {
      throw new LogoMeshError('LM_GRANT_PATH', `a granted path is mounted at ${GRANTS_MOUNT}/<name>, found '${containerPart}'`, { expected: `${GRANTS_MOUNT}/<name>`, found: containerPart });
    }
    name = rel;
  }
  if (!NAME.test(name)) {
    throw new LogoMeshError('LM_GRANT_PATH', `the name of a granted path must be 1-63 letters, digits, '.', '_' or '-' (not starting with '.' or '-'), found '${name}'`, {
      expected: 'a name such as data or reports-2024',
      found: name,
    });
  }
  return { requested: path.resolve(hostPart), name };
}

/** The real path of `requested`, every symlink resolved. Throws LM_GRANT_PATH. */
export function realPathOf(requested: string): string {
  try {
    return realpathSync(requested);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new LogoMeshError('LM_GRANT_PATH', `${requested}: cannot be granted (${code})`, { file: requested, expected: 'an existing host folder or file', found: String(code) });
  }
}

/** Is one of the two paths the other or below it? */
export function overlaps(a: string, b: string): boolean {
  const inside = (x: string, y: string) => x === y || x.startsWith(y.endsWith(path.sep) ? y : y + path.sep);
  return inside(a, b) || inside(b, a);
}

/**
 * Resolve a grant again right before its container is created and compare: the mount uses
 * the real path of grant time, and only if resolving the path now still gives it. Throws
 * LM_GRANT_PATH naming both.
 */
export function recheckGrant(pluginId: string, g: PathGrant): void {
  let now: string;
  try {
    now = realpathSync(g.requested);
  } catch (err) {
    now = `nothing (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (now !== g.hostPath) {
    throw new LogoMeshError(
      'LM_GRANT_PATH',
      `plugin ${pluginId}: the granted path ${g.requested} resolved to ${g.hostPath} when granted but to ${now} now (a symlink on the way changed); the container is not created. Revoke the grant (logomesh revoke ${pluginId} path ${g.name}) and grant it again if the change is intended`,
      { plugin: pluginId, file: g.requested, grant: g.name, expected: g.hostPath, found: now },
    );
  }
}
