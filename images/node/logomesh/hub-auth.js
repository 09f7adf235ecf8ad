// Reaching a hub across nodes (docs/kubernetes.md, "The hub across nodes"). When
// LOGOMESH_HUB_URL is set (ws://host:port/v1 or wss://), the plugin connects there over TCP
// instead of its Unix socket, and proves who it is at every connection attempt: an
// HMAC-SHA256 with its own key (the file LOGOMESH_HUB_CREDENTIAL names, read afresh each time:
// the kubelet updates a rotated Secret in place) over a fresh timestamp and nonce, in the
// upgrade request's Authorization header. The key never travels; the header is never logged.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LogoMeshError } from './errors.js';

export const HUB_AUTH_SCHEME = 'LogoMesh-HMAC-SHA256';

/** The Authorization header: `nonce` is 32 lower-case hex digits, `ts` ms since the epoch. */
export function hubAuthorization(key, pluginId, ts, nonce) {
  const sig = createHmac('sha256', key).update(`logomesh-hub-v1\n${pluginId}\n${ts}\n${nonce}`).digest('hex');
  return `${HUB_AUTH_SCHEME} plugin="${pluginId}", ts="${ts}", nonce="${nonce}", sig="${sig}"`;
}

export function isHubUrl(endpoint) {
  return typeof endpoint === 'string' && /^wss?:\/\//.test(endpoint);
}

/**
 * What one connection attempt to a hub across nodes sends: the header with the key read now
 * and a new nonce, and for wss:// the CA of LOGOMESH_HUB_CA. Throws LM_UNAUTHORIZED without a
 * readable key.
 */
export function tcpConnectOptions(pluginId, env = process.env) {
  const file = env.LOGOMESH_HUB_CREDENTIAL;
  if (!file) throw new LogoMeshError('LM_UNAUTHORIZED', 'LOGOMESH_HUB_URL is set but LOGOMESH_HUB_CREDENTIAL is not: the plugin has no key to prove who it is');
  let key;
  try {
    key = readFileSync(file);
  } catch (err) {
    throw new LogoMeshError('LM_UNAUTHORIZED', `the hub key ${file} cannot be read: ${err.code ?? err.message}`, { file });
  }
  if (key.length === 0) throw new LogoMeshError('LM_UNAUTHORIZED', `the hub key ${file} is empty`, { file });
  return {
    headers: { Authorization: hubAuthorization(key, pluginId, Date.now(), randomBytes(16).toString('hex')) },
    ...(env.LOGOMESH_HUB_CA ? { ca: readFileSync(env.LOGOMESH_HUB_CA) } : {}),
  };
}
