import { mkdirSync, rmSync } from 'node:fs';
import { checkPropagation } from './propagation.js';
import { mountTmpfs, tmpfsMountsUnder, unmount } from './tmpfs.js';

/** The root tmpfs's size: it holds only the owners' mount points, each of which is a tmpfs of its own. */
const ROOT_BYTES = 64 * 1024;

/**
 * The pool's own tmpfs at its folder, which the owners' tmpfs are mounted under: mounted on
 * first use (after the propagation check, so a controller in a container mounts only where
 * the engine sees it), found again after a killed controller, and taken down with all under it.
 */
export class PoolRoot {
  private mounted = false;

  constructor(readonly dir: string) {}

  /** Mount the root unless it is (idempotent). */
  async ensure(): Promise<void> {
    if (this.mounted) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o711 });
    if (!tmpfsMountsUnder(this.dir).includes(this.dir)) {
      checkPropagation(this.dir);
      await mountTmpfs(this.dir, ROOT_BYTES, 'logomesh-pool', true);
    }
    this.mounted = true;
  }

  /** An earlier controller's pool: the tmpfs mounts under the folder when its root is one (then taken as mounted), else undefined. */
  found(): string[] | undefined {
    const mounts = tmpfsMountsUnder(this.dir);
    if (!mounts.includes(this.dir)) return undefined;
    this.mounted = true;
    return mounts;
  }

  /** Unmount every tmpfs under the folder and remove it. Idempotent. */
  async remove(): Promise<void> {
    for (const m of tmpfsMountsUnder(this.dir)) await unmount(m);
    rmSync(this.dir, { recursive: true, force: true });
    this.mounted = false;
  }
}
