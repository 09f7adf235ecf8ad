import { chmodSync, chownSync } from 'node:fs';
import type { Logger } from '../log.js';

/**
 * Give a plugin's hub socket to the plugin's own user and group, mode 0600: only that
 * plugin (and root) can connect to it, not another plugin, not another local user. A
 * controller that is not root cannot give it away: the socket is then world-writable
 * (0666), and a warning says so (docs/security.md#limits-of-the-model).
 */
export function giveSocketTo(socketPath: string, uid: number, gid: number, log: Logger): void {
  try {
    chownSync(socketPath, uid, gid);
    chmodSync(socketPath, 0o600);
  } catch {
    chmodSync(socketPath, 0o666);
    log.warn({ socketPath }, 'cannot give the plugin socket to its user (controller not root); it is world-writable on this host');
  }
}
