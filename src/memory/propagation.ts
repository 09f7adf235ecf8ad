import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { ownMountNamespace } from '../sandbox/mount-staging.js';
import { unescapeMountPath } from './tmpfs.js';

/** The mount that holds a path, from a mountinfo text: its mount point and whether it is shared. */
export interface HoldingMount {
  readonly target: string;
  readonly shared: boolean;
}

/**
 * The mount `dir` lives on (the deepest mount point at or above it) in `mountinfo` (the text of
 * /proc/self/mountinfo), and whether it propagates its mounts to peers (`shared:N` among its
 * optional fields). Undefined when no line covers it.
 */
export function holdingMount(mountinfo: string, dir: string): HoldingMount | undefined {
  let best: HoldingMount | undefined;
  for (const line of mountinfo.split('\n')) {
    const [left] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    if (fields.length < 6) continue;
    const target = unescapeMountPath(fields[4] ?? '');
    const under = target === '/' || dir === target || dir.startsWith(`${target}/`);
    if (!under || (best && best.target.length > target.length)) continue;
    best = { target, shared: fields.slice(6).some((f) => f.startsWith('shared:')) };
  }
  return best;
}

/**
 * In a container (the compose service: a mount namespace other than the engine's), a tmpfs the
 * controller mounts exists in its own mount namespace only, unless the folder it mounts in is on
 * a shared mount whose peer is on the host: the engine bind-mounts the pool into plugins by its
 * host path, and without propagation it would give them the empty folder under the mount,
 * silently. So the pool refuses (LM_MEMORY_POOL) rather than hand out a pool no plugin can see.
 * On the host the controller mounts in the engine's own namespace and nothing is checked.
 */
export function checkPropagation(poolDir: string, opts: { container?: boolean; mountinfo?: string } = {}): void {
  if (!(opts.container ?? ownMountNamespace())) return;
  const parent = realpathSync(path.dirname(poolDir));
  const mount = holdingMount(opts.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8'), parent);
  if (mount?.shared) return;
  throw new LogoMeshError(
    'LM_MEMORY_POOL',
    `the pool's folder ${poolDir} is on ${mount ? `the mount ${mount.target}` : 'no mount'}, which is not shared: a tmpfs the controller mounts there from its container would never reach the engine nor the plugins. Bind the home into the controller with propagation rshared (compose.yaml does), from a host folder on a shared mount (docs/operations.md#shared-memory-under-compose)`,
    { field: 'pool', expected: `${parent} on a mount with shared propagation (rshared bind of the home)`, found: mount ? `${mount.target}, not shared` : 'no mount' },
  );
}
