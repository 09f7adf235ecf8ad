// How a plugin is configured: its options, their defaults, and what it reads from the
// environment the controller sets.

export const DEFAULT_SOCKET = '/run/logomesh/hub.sock';
/** The hub answers a call that timed out itself; the SDK's own timer is a backstop after it. */
export const TIMEOUT_BACKSTOP_MS = 500;
/** How long the hub gets to answer hello, subscribe and unsubscribe. */
export const CONTROL_TIMEOUT_MS = 10_000;
/** How long a clean close may wait for the hub's close frame. */
export const CLOSE_WAIT_MS = 1_000;
/** Connect errors worth retrying while the socket is not there yet. */
export const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);
/** After an established connection is lost: how long to try to reconnect, and the backoff. */
export const DEFAULT_RECONNECT_MS = 60_000;
export const RECONNECT_FIRST_DELAY_MS = 100;
export const RECONNECT_MAX_DELAY_MS = 2_000;

export function noop() {}

function defaultLog(level, message) {
  process.stderr.write(`[logomesh] ${level}: ${message}\n`);
}

function reconnectMsFromEnv(log) {
  const raw = (process.env.LOGOMESH_RECONNECT_MS ?? '').trim();
  if (raw === '') return DEFAULT_RECONNECT_MS;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value)) {
    log('warn', `LOGOMESH_RECONNECT_MS=${JSON.stringify(raw)} is not a number of milliseconds >= 0; using ${DEFAULT_RECONNECT_MS}`);
    return DEFAULT_RECONNECT_MS;
  }
  return value;
}

/**
 * The options of a Plugin with their defaults filled in (see PluginOptions in index.d.ts).
 * Throws TypeError for a reconnectMs that is not a whole number >= 0.
 */
export function resolveOptions(options = {}) {
  const log = options.log === false ? noop : (options.log ?? defaultLog);
  if (options.reconnectMs !== undefined && !(Number.isSafeInteger(options.reconnectMs) && options.reconnectMs >= 0)) {
    throw new TypeError(`reconnectMs must be a whole number of milliseconds >= 0, got ${JSON.stringify(options.reconnectMs)}`);
  }
  return Object.freeze({
    pluginId: options.pluginId ?? process.env.LOGOMESH_PLUGIN_ID ?? '',
    socketPath: options.socketPath ?? process.env.LOGOMESH_HUB_SOCKET ?? DEFAULT_SOCKET,
    // A hub across nodes (docs/kubernetes.md): LOGOMESH_HUB_URL, unless a socket is given here.
    hubUrl: options.hubUrl ?? (options.socketPath === undefined ? process.env.LOGOMESH_HUB_URL || undefined : undefined),
    exit: options.exit ?? true,
    handleSignals: options.handleSignals ?? true,
    graceMs: options.graceMs ?? 5_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    reconnectMs: options.reconnectMs ?? reconnectMsFromEnv(log),
    // A warm standby (LOGOMESH_STANDBY=1, set by the controller): the hub answers its first
    // hello only when it is switched in, which may be hours later, so that wait has no timeout.
    standby: options.standby ?? process.env.LOGOMESH_STANDBY === '1',
    log,
  });
}
