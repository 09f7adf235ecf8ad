import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveHome, type Home } from '../../src/controller/home.js';

/**
 * A benchmark controller's home under the system's temporary folder (`lm-bench-<name>-<pid>`),
 * and its removal once the controller is closed: a run leaves no audit trail or state behind.
 */
export function benchHome(name: string, instance: string): { home: Home; remove: () => void } {
  const home = resolveHome({ LOGOMESH_HOME: path.join(os.tmpdir(), `lm-bench-${name}-${process.pid}`), LOGOMESH_INSTANCE: instance });
  return {
    home,
    remove: () => {
      try {
        rmSync(home.dir, { recursive: true, force: true });
      } catch (err) {
        // A mount the controller did not take down (EBUSY) is worth seeing, not worth failing the run.
        process.stderr.write(`bench: could not remove ${home.dir}: ${(err as Error).message}\n`);
      }
    },
  };
}
