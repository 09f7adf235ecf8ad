import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

/**
 * The controller's home: its control socket, the hub token and port, and one socket folder
 * per plugin. One controller per home. LOGOMESH_HOME overrides the default, which is
 * /run/logomesh for root and a per-user folder otherwise.
 */
export interface Home {
  readonly dir: string;
  readonly controlSocket: string;
  readonly tokenFile: string;
  readonly portFile: string;
  readonly logFile: string;
  readonly stateFile: string;
  readonly auditFile: string;
  readonly socketsDir: string;
  /** The controller instance label: stable per home, so a restarted controller finds its predecessor's containers. */
  readonly instance: string;
}

export function resolveHome(env: NodeJS.ProcessEnv = process.env): Home {
  const uid = process.getuid?.() ?? 0;
  const dir = path.resolve(env.LOGOMESH_HOME ?? (uid === 0 ? '/run/logomesh' : path.join(env.XDG_RUNTIME_DIR ?? os.tmpdir(), `logomesh-${uid}`)));
  return {
    dir,
    controlSocket: path.join(dir, 'control.sock'),
    tokenFile: path.join(dir, 'hub.token'),
    portFile: path.join(dir, 'hub.port'),
    logFile: path.join(dir, 'controller.log'),
    stateFile: path.join(dir, 'state.json'),
    auditFile: path.join(dir, 'audit.jsonl'),
    socketsDir: path.join(dir, 'sockets'),
    instance: env.LOGOMESH_INSTANCE || `ctl-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`,
  };
}

/**
 * The socket folder of one plugin (bind-mounted into its container only). A plugin being
 * replaced runs two containers for a moment, each with its own folder: generation 0 is
 * `sockets/<id>`, generation 1 `sockets/<id>.1` (a plugin id has no dot, so no clash).
 */
export function pluginSocketDir(home: Home, pluginId: string, generation: 0 | 1 = 0): string {
  return path.join(home.socketsDir, generation === 0 ? pluginId : `${pluginId}.${generation}`);
}
