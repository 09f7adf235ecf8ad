import { hostname } from 'node:os';
import { ignoreGone } from '../engine/cleanup.js';
import type { Docker } from '../engine/docker.js';
import { LABEL, OWNER, runInstancePid } from '../labels.js';
import type { Logger } from '../log.js';

/**
 * Remove plugin containers left by a `logomesh run` process that no longer exists (it was
 * SIGKILLed, or the machine lost power mid-run). A run removes its own container on every
 * path it controls; this covers the paths it cannot. Only containers created on this host
 * are considered, since a pid means nothing elsewhere.
 */
export async function removeRunOrphans(docker: Docker, log: Logger): Promise<string[]> {
  const filters = JSON.stringify({ label: [`${LABEL.owner}=${OWNER}`, `${LABEL.role}=plugin`, `${LABEL.host}=${hostname()}`] });
  const removed: string[] = [];
  for (const c of await docker.listContainers({ all: true, filters })) {
    const pid = runInstancePid(c.Labels[LABEL.instance] ?? '');
    if (pid === undefined || isAlive(pid)) continue;
    await ignoreGone(docker.getContainer(c.Id).remove({ force: true, v: true }));
    log.warn({ container: c.Id.slice(0, 12), plugin: c.Labels[LABEL.plugin], pid }, 'removed a plugin container left by a run that no longer exists');
    removed.push(c.Id);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
