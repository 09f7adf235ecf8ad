import type { HubStats } from '../hub/hub.js';
import type { Managed } from './managed.js';
import type { PluginStatus } from './types.js';

/** What `ps` shows of a plugin: its record, with what the hub knows of its connection. */
export function statusOf(m: Managed, hub: HubStats | undefined, uid: number): PluginStatus {
  const { id, version, runtime } = m.loaded.manifest;
  return {
    id,
    version,
    runtime,
    state: m.state,
    methods: hub?.methods ?? [],
    droppedMessages: hub?.droppedMessages ?? 0,
    restarts: m.restarts,
    uid,
    ...(m.state === 'restarting' && m.restartAt ? { restartAt: m.restartAt } : {}),
    ...(m.container ? { containerId: m.container.id } : {}),
    ...(m.startedAt !== undefined ? { startedAt: m.startedAt } : {}),
    ...(m.startMs !== undefined ? { startMs: m.startMs } : {}),
    ...(m.exitCode !== undefined ? { exitCode: m.exitCode } : {}),
    ...(m.oomKilled ? { oomKilled: true } : {}),
    ...(m.lastError ? { lastError: m.lastError } : {}),
    ...(m.debug ? { debug: m.debug } : {}),
    ...(m.boost ? { boost: m.boost.status } : {}),
  };
}
