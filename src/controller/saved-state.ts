import { rmSync } from 'node:fs';
import type { SavedPermissions } from '../grants/saved.js';
import type { Logger } from '../log.js';
import type { Managed } from './managed.js';
import { StateStore, type ControllerState, type SavedPlugin } from './state-store.js';

type PermissionsOf = (id: string) => SavedPermissions | undefined;

/**
 * How long the lifecycle's saves (a ready, a restart, an adoption) wait to be written together.
 * An `up` of 200 saved the whole file at each of its 200 readies; now a burst is one write.
 * A controller killed in this window leaves the state of the save before: its successor finds
 * the containers by their labels, not by this file (adoption.ts).
 */
export const COALESCE_MS = 500;

/**
 * What a controller keeps in `<home>/state.json` for its successor: the plugin folders,
 * restart counts, containers, and (from Grants) each plugin's operator permissions. Saved
 * on every change. What an earlier controller of the same home saved is read once: each
 * plugin's permissions are handed over when it is loaded, and the entries of plugins not
 * loaded (yet) are written back unchanged, so that loading a subset does not forget the
 * others' revocations.
 */
export class SavedState {
  private readonly store: StateStore;
  private readonly inherited: Map<string, SavedPlugin>;
  /** A coalesced save not written yet: what it saves, read when it is written. */
  private pending?: { readonly timer: NodeJS.Timeout; readonly plugins: () => readonly Managed[]; readonly permissionsOf: PermissionsOf };
  /** Files written (for the tests). */
  writes = 0;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    this.store = new StateStore(file);
    this.inherited = new Map(Object.entries(this.store.read()?.plugins ?? {}).filter(([, p]) => p.permissions));
  }

  /** The state file as it is now (for restart counts), a save still waiting written first. */
  read(): ControllerState | undefined {
    this.flush();
    return this.store.read();
  }

  /** The permissions an earlier controller saved for a plugin: given once, at its load. */
  takePermissions(id: string): SavedPermissions | undefined {
    const saved = this.inherited.get(id)?.permissions;
    this.inherited.delete(id);
    return saved;
  }

  /**
   * Save the loaded plugins as they stand within COALESCE_MS, with every other save of that
   * time: for the lifecycle's frequent changes. The operator's changes use save().
   */
  saveSoon(plugins: () => readonly Managed[], permissionsOf: PermissionsOf): void {
    if (this.pending) return; // the one waiting reads the plugins when it writes
    const timer = setTimeout(() => this.flush(), COALESCE_MS);
    timer.unref(); // a process ending writes at close (keepForNextStart), or leaves the last save
    this.pending = { timer, plugins, permissionsOf };
  }

  /** Write a save still waiting, now. */
  flush(): void {
    const p = this.pending;
    if (!p) return;
    this.save(p.plugins(), p.permissionsOf);
  }

  /** Save the loaded plugins as they stand, now (a waiting save too). Never throws: a failure is logged. */
  save(plugins: readonly Managed[], permissionsOf: PermissionsOf): void {
    this.cancel();
    const saved: Record<string, SavedPlugin> = Object.fromEntries(this.inherited);
    for (const m of plugins) {
      const id = m.loaded.manifest.id;
      const permissions = permissionsOf(id);
      saved[id] = { restarts: m.restarts, manifestHash: m.loaded.hash, ...(m.container ? { containerId: m.container.id } : {}), ...(permissions ? { permissions } : {}) };
    }
    try {
      this.store.write({ version: 1, folders: plugins.map((m) => m.loaded.pluginDir), plugins: saved });
      this.writes++;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.file }, 'could not save the controller state');
    }
  }

  /**
   * At a clean stop: nothing is left to adopt, but the operator's revocations and grants are
   * security decisions and stay for the next controller of this home, and so do the plugin
   * folders, which `logomesh up` without a folder loads again. The file keeps only them, or
   * goes if there are none.
   */
  keepForNextStart(plugins: readonly Managed[], permissionsOf: PermissionsOf): void {
    this.cancel();
    const saved: Record<string, SavedPlugin> = {};
    for (const [id, p] of this.inherited) if (p.permissions) saved[id] = { restarts: 0, manifestHash: p.manifestHash, permissions: p.permissions };
    for (const m of plugins) {
      const id = m.loaded.manifest.id;
      const permissions = permissionsOf(id);
      if (permissions) saved[id] = { restarts: 0, manifestHash: m.loaded.hash, permissions };
    }
    const folders = plugins.map((m) => m.loaded.pluginDir);
    try {
      if (Object.keys(saved).length === 0 && folders.length === 0) rmSync(this.file, { force: true });
      else this.store.write({ version: 1, folders, plugins: saved });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.file }, 'could not save the operator permissions');
    }
  }

  private cancel(): void {
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
  }
}
