import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HEALTH_REPORT_NAME } from '../sandbox/health-check.js';
import type { Home } from './home.js';
import { pluginSocketDir } from './home.js';

/**
 * Write the hub's view of a plugin where its Docker health check reads it
 * (sandbox/health-check.ts): `ok`, or `unhealthy: <why>`. The file is in the plugin's hub
 * socket folder, which the controller owns and the plugin sees read-only, and is replaced
 * whole (rename), so the check never reads half a line. Never throws: the folder is gone
 * once the plugin is torn down, and a report about a plugin that is gone does not matter.
 */
export function reportHealth(home: Home, pluginId: string, text: string, generation: 0 | 1 = 0): void {
  // The socket folder its container has (a replacement's is the other one, see managed.ts).
  const dir = pluginSocketDir(home, pluginId, generation);
  // Written beside the plugin's folder, not in it: the plugin never sees a half-made file.
  const tmp = path.join(home.socketsDir, `.${HEALTH_REPORT_NAME}-${pluginId}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(tmp, `${text.replace(/\s+/g, ' ').slice(0, 200)}\n`, { mode: 0o644 });
    renameSync(tmp, path.join(dir, HEALTH_REPORT_NAME));
  } catch {
    // Torn down meanwhile.
    rmSync(tmp, { force: true });
  }
}
