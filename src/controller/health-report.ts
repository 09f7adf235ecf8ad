import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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
  const file = path.join(pluginSocketDir(home, pluginId, generation), HEALTH_REPORT_NAME);
  const line = `${text.replace(/\s+/g, ' ').slice(0, 200)}\n`;
  // The same report as last time: only its age matters to the check, and touching the file
  // costs a fortieth of writing and renaming one (every plugin reports at each health ping).
  if (written.get(file) === line && touched(file)) return;
  written.delete(file);
  // Written beside the plugin's folder, not in it: the plugin never sees a half-made file.
  const tmp = path.join(home.socketsDir, `.${HEALTH_REPORT_NAME}-${pluginId}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(tmp, line, { mode: 0o644 });
    renameSync(tmp, file);
    written.set(file, line);
  } catch {
    // Torn down meanwhile.
    rmSync(tmp, { force: true });
  }
}

/**
 * The line last written to each report file. A plugin that is gone leaves its entry (one
 * short line per plugin id and generation); a report to a path whose file is gone writes
 * it again.
 */
const written = new Map<string, string>();

function touched(file: string): boolean {
  try {
    const now = new Date();
    utimesSync(file, now, now);
    return true;
  } catch {
    return false;
  }
}
