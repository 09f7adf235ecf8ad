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
export function reportHealth(home: Home, pluginId: string, text: string, generation: 0 | 1 = 0, now = Date.now()): void {
  // Every plugin reports at each health ping (40 a second with 200 plugins): the same text
  // as last time, within REFRESH_MS, is found without making its path or its line.
  const key = keyOf(home, pluginId, generation);
  const last = written.get(key);
  if (last?.text === text && now - last.at < REFRESH_MS) return;
  // The socket folder its container has (a replacement's is the other one, see managed.ts).
  const file = last?.file ?? path.join(pluginSocketDir(home, pluginId, generation), HEALTH_REPORT_NAME);
  const line = `${text.replace(/\s+/g, ' ').slice(0, 200)}\n`;
  // The same report as last time: only its age matters to the check, and touching the file
  // costs a fortieth of writing and renaming one.
  // Touched at most every REFRESH_MS: the check's max age is at least 60 s.
  if (last?.line === line && now - last.at < REFRESH_MS) return;
  if (last?.line === line && touched(file, now)) {
    last.at = now;
    last.text = text;
    return;
  }
  written.delete(key);
  // Written beside the plugin's folder, not in it: the plugin never sees a half-made file.
  const tmp = path.join(home.socketsDir, `.${HEALTH_REPORT_NAME}-${pluginId}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(tmp, line, { mode: 0o644 });
    renameSync(tmp, file);
    written.set(key, { file, text, line, at: now });
  } catch {
    // Torn down meanwhile.
    rmSync(tmp, { force: true });
  }
}

/** A new container of the plugin (its socket folder may be new): its next report is written, whatever the last one said. */
export function forgetHealthReport(home: Home, pluginId: string, generation: 0 | 1 = 0): void {
  written.delete(keyOf(home, pluginId, generation));
}

function keyOf(home: Home, pluginId: string, generation: 0 | 1): string {
  return `${home.socketsDir}\0${pluginId}\0${generation}`;
}

/**
 * How often an unchanged report's time is set. The container's check calls a report stale
 * after max(60 s, three health intervals), and a report is made at each health ping, so the
 * file is never older than this plus one interval when the check reads it. At 200 plugins
 * pinged every 5 s this is 13 touches a second instead of 40.
 */
const REFRESH_MS = 10_000;

/**
 * The line last written to each plugin's report file (by home, plugin and generation), the
 * text it was made from, and when it was written or touched. A plugin
 * that is gone leaves its entry (one short line per plugin id and generation); a report to
 * a path whose file is gone writes it again (at its next refresh).
 */
const written = new Map<string, { readonly file: string; text: string; readonly line: string; at: number }>();

function touched(file: string, nowMs: number): boolean {
  try {
    const now = new Date(nowMs);
    utimesSync(file, now, now);
    return true;
  } catch {
    return false;
  }
}
