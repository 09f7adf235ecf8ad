import { LogoMeshError } from '../errors.js';
import { hubLimitsFromEnv, positiveInteger } from '../hub/limits-from-env.js';
import type { ControllerOptions, MonitoringOptions } from './options.js';

/**
 * LOGOMESH_HUB_TOKEN, when set and not empty, is the hub token host clients present (so a
 * supervisor such as compose can hand it to them); otherwise the controller makes a random
 * one. Throws LM_USAGE for a token that is too short, too long or not printable.
 */
export function hubTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = env.LOGOMESH_HUB_TOKEN;
  if (!token) return undefined;
  if (!/^[\x21-\x7e]{16,4096}$/.test(token)) {
    throw new LogoMeshError('LM_USAGE', 'LOGOMESH_HUB_TOKEN must be 16 to 4096 printable ASCII characters without spaces; unset it to get a random token', {
      expected: '16 to 4096 printable ASCII characters',
      found: `${token.length} characters`,
    });
  }
  return token;
}

/** LOGOMESH_AUDIT_MAX_BYTES and LOGOMESH_AUDIT_KEEP: the audit trail's rotation. Throws LM_USAGE. */
function auditRotationFromEnv(env: NodeJS.ProcessEnv = process.env): { maxBytes?: number; keep?: number } {
  const maxBytes = env.LOGOMESH_AUDIT_MAX_BYTES;
  const keep = env.LOGOMESH_AUDIT_KEEP;
  return { ...(maxBytes ? { maxBytes: positiveInteger('LOGOMESH_AUDIT_MAX_BYTES', maxBytes) } : {}), ...(keep ? { keep: positiveInteger('LOGOMESH_AUDIT_KEEP', keep) } : {}) };
}

/** LOGOMESH_POOL_BYTES and LOGOMESH_POOL_PLUGIN_BYTES: the shared-memory pool's size and one plugin's most (docs/shared-memory.md). Throws LM_USAGE. */
function sharedMemoryFromEnv(env: NodeJS.ProcessEnv = process.env): { poolBytes?: number; maxPluginBytes?: number } {
  const pool = env.LOGOMESH_POOL_BYTES;
  const plugin = env.LOGOMESH_POOL_PLUGIN_BYTES;
  return { ...(pool ? { poolBytes: positiveInteger('LOGOMESH_POOL_BYTES', pool) } : {}), ...(plugin ? { maxPluginBytes: positiveInteger('LOGOMESH_POOL_PLUGIN_BYTES', plugin) } : {}) };
}

/**
 * LOGOMESH_HOST_METHODS: the host methods host clients may serve, comma-separated method
 * names (`get_user,log_event`). Throws LM_USAGE naming a bad one.
 */
export function hostMethodsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = (env.LOGOMESH_HOST_METHODS ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(n));
  if (bad.length) {
    throw new LogoMeshError('LM_USAGE', `LOGOMESH_HOST_METHODS (or --host-methods) lists what is not a method name: ${bad.join(', ')}; give names such as get_user,log_event`, { field: 'LOGOMESH_HOST_METHODS', expected: 'comma-separated method names (a letter or _, then letters, digits, _)', found: bad.join(', ') });
  }
  return [...new Set(names)];
}

/**
 * LOGOMESH_STANDBY: the plugins that keep a warm standby whatever their manifests say, as a
 * comma-separated list of ids, or `*` for every one. Throws LM_USAGE for anything else.
 */
export function standbyFromEnv(env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const raw = env.LOGOMESH_STANDBY?.trim();
  if (!raw) return undefined;
  if (raw === '*') return ['*'];
  const ids = raw.split(',').map((x) => x.trim());
  const bad = ids.find((x) => !/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(x));
  if (bad !== undefined) {
    throw new LogoMeshError('LM_USAGE', `LOGOMESH_STANDBY must be * or a comma-separated list of plugin ids, found ${JSON.stringify(bad.slice(0, 64))}`, { field: 'LOGOMESH_STANDBY', expected: '* or plugin ids separated by commas', found: raw.slice(0, 200) });
  }
  return ids;
}

/**
 * LOGOMESH_MONITOR=0 runs without the resource monitor; LOGOMESH_HEALTH_CHECK_MS sets how
 * often the engine runs each plugin's Docker health check (0: none). Throws LM_USAGE.
 */
function monitoringFromEnv(env: NodeJS.ProcessEnv): MonitoringOptions {
  const monitor = env.LOGOMESH_MONITOR;
  if (monitor !== undefined && monitor !== '' && monitor !== '0' && monitor !== '1') {
    throw new LogoMeshError('LM_USAGE', `LOGOMESH_MONITOR must be 0 or 1, found '${monitor}'`, { expected: '0 or 1', found: monitor });
  }
  const health = env.LOGOMESH_HEALTH_CHECK_MS;
  return {
    ...(monitor === '0' ? { enabled: false } : {}),
    ...(health === '0' ? { healthCheckMs: false } : health ? { healthCheckMs: positiveInteger('LOGOMESH_HEALTH_CHECK_MS', health) } : {}),
  };
}

/**
 * The controller options the environment sets, as `logomesh up` reads them: the hub token,
 * the hub's limits (hubLimitsFromEnv), the audit trail's rotation, the resource monitor, the
 * Docker health check, the operator's standbys, how many plugins start at once, the
 * shared-memory pool's size and the host methods host clients may serve. Throws LM_USAGE
 * naming the variable.
 */
export function controllerOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Pick<ControllerOptions, 'hubToken' | 'hubLimits' | 'auditRotation' | 'monitoring' | 'standby' | 'startConcurrency' | 'sharedMemory' | 'hostMethods'> {
  const hubToken = hubTokenFromEnv(env);
  const standby = standbyFromEnv(env);
  const hostMethods = hostMethodsFromEnv(env);
  const concurrency = env.LOGOMESH_START_CONCURRENCY;
  return {
    hubLimits: hubLimitsFromEnv(env),
    auditRotation: auditRotationFromEnv(env),
    monitoring: monitoringFromEnv(env),
    sharedMemory: sharedMemoryFromEnv(env),
    ...(hubToken ? { hubToken } : {}),
    ...(standby ? { standby } : {}),
    ...(hostMethods.length ? { hostMethods } : {}),
    ...(concurrency ? { startConcurrency: positiveInteger('LOGOMESH_START_CONCURRENCY', concurrency) } : {}),
  };
}
