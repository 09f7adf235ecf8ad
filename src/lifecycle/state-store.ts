import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** What a controller keeps across restarts, in `<home>/state.json`. */
export interface ControllerState {
  readonly version: 1;
  /** Plugin folders loaded, in load order. */
  readonly folders: string[];
  /** Per plugin: what a restarted controller must not forget. */
  readonly plugins: Record<string, { restarts: number; manifestHash: string; containerId?: string }>;
}

/**
 * The state file is replaced atomically (write a temporary file, fsync by close, rename), so
 * a controller killed mid-write leaves the previous state, never half of one.
 */
export class StateStore {
  constructor(private readonly file: string) {}

  read(): ControllerState | undefined {
    try {
      const s = JSON.parse(readFileSync(this.file, 'utf8')) as ControllerState;
      return s.version === 1 ? s : undefined;
    } catch {
      return undefined;
    }
  }

  write(state: ControllerState): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
