import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isRecord, isString, parsePermissions, type SavedPermissions } from '../grants/saved.js';

export interface SavedPlugin {
  readonly restarts: number;
  readonly manifestHash: string;
  readonly containerId?: string;
  /** Absent when the operator changed nothing, and in state files written before it existed. */
  readonly permissions?: SavedPermissions;
}

/** What a controller keeps across restarts, in `<home>/state.json`. */
export interface ControllerState {
  readonly version: 1;
  /** Plugin folders loaded, in load order. */
  readonly folders: string[];
  /** Per plugin: what a restarted controller must not forget. */
  readonly plugins: Record<string, SavedPlugin>;
}

/**
 * The state file is replaced atomically (write a temporary file, fsync by close, rename), so
 * a controller killed mid-write leaves the previous state, never half of one.
 */
export class StateStore {
  constructor(private readonly file: string) {}

  read(): ControllerState | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return undefined;
    }
    return parseState(text);
  }

  write(state: ControllerState): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}

/**
 * Read a state file's text. Version 1 without `permissions` (written before they were kept)
 * is as valid as with them. A damaged file, or another version, is no state at all; a
 * damaged entry is left out rather than failing the whole file, so one bad value does
 * not make a controller forget every other plugin's revocations.
 */
export function parseState(text: string): ControllerState | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(raw) || raw.version !== 1) return undefined;
  const folders = Array.isArray(raw.folders) ? raw.folders.filter(isString) : [];
  const plugins: Record<string, SavedPlugin> = {};
  for (const [id, p] of Object.entries(isRecord(raw.plugins) ? raw.plugins : {})) {
    if (!isRecord(p) || typeof p.restarts !== 'number' || !isString(p.manifestHash)) continue;
    const permissions = isRecord(p.permissions) ? parsePermissions(p.permissions) : undefined;
    plugins[id] = {
      restarts: p.restarts,
      manifestHash: p.manifestHash,
      ...(isString(p.containerId) ? { containerId: p.containerId } : {}),
      ...(permissions ? { permissions } : {}),
    };
  }
  return { version: 1, folders, plugins };
}
