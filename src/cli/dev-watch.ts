import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/** Changes closer together than this are one reload. */
export const DEBOUNCE_MS = 100;

/**
 * Folders whose changes never reload: version control, editor state, caches, and
 * node_modules (too many folders to watch; a change that uses a new package is saved in
 * the plugin's own code too).
 */
const IGNORED_DIRS = new Set(['.git', '.hg', '.svn', '.idea', '.vscode', '__pycache__', '.pytest_cache', '.mypy_cache', '.ruff_cache', '.cache', 'target', 'node_modules']);

/**
 * Files editors and tools write next to the real ones: vim swap files and its 4913 probe,
 * backups ending in ~, emacs lock and autosave files, JetBrains safe-write temporaries,
 * .DS_Store, compiled Python.
 */
const IGNORED_FILE = /(^\.#)|(^#.*#$)|(~$)|(\.sw[a-px]$)|(^4913$)|(\.tmp$)|(___jb_(tmp|old)___$)|(^\.DS_Store$)|(\.py[co]$)/;

/** Whether a change to this path (relative to the plugin folder) is ignored. */
export function ignoredChange(relative: string | null | undefined): boolean {
  if (!relative) return false; // unknown file: reload, to be safe
  const parts = relative.split(/[\\/]/).filter(Boolean);
  if (parts.slice(0, -1).some((p) => IGNORED_DIRS.has(p)) || IGNORED_DIRS.has(parts.at(-1) ?? '')) return true;
  return IGNORED_FILE.test(parts.at(-1) ?? '');
}

/**
 * Watches a folder tree: one watcher per folder, added as folders appear. Node 20's
 * `recursive` watch on Linux watches each file's inode, so it goes deaf to a file that an
 * editor (or `sed -i`) replaced by renaming a new one over it; a folder's watch sees every
 * change of its entries, whatever the editor does.
 */
export class TreeWatcher {
  private readonly watchers = new Map<string, FSWatcher>();

  constructor(
    private readonly root: string,
    private readonly onChange: (relative: string) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.add(root);
  }

  private add(dir: string): void {
    if (this.watchers.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, (_event, name) => this.changed(dir, name?.toString() ?? ''));
    } catch (err) {
      // Gone already, or not readable: nothing to watch there.
      if (dir === this.root) this.onError(err as Error);
      return;
    }
    w.on('error', (err) => {
      this.drop(dir);
      if (dir === this.root) this.onError(err);
    });
    this.watchers.set(dir, w);
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && !IGNORED_DIRS.has(e.name))
        .map((e) => e.name);
    } catch {
      // Removed while being added.
    }
    for (const e of entries) this.add(path.join(dir, e));
  }

  private drop(dir: string): void {
    for (const [d, w] of this.watchers) {
      if (d === dir || d.startsWith(`${dir}${path.sep}`)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  private changed(dir: string, name: string): void {
    const full = name ? path.join(dir, name) : dir;
    const relative = path.relative(this.root, full);
    if (ignoredChange(relative)) return;
    // A folder that appeared is watched too; one that went away is dropped.
    const st = statSync(full, { throwIfNoEntry: false });
    if (st?.isDirectory()) this.add(full);
    else if (!st) this.drop(full);
    this.onChange(relative || '.');
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
