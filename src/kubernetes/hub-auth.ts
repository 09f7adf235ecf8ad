import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The handshake a plugin uses to prove who it is to a hub it reaches over TCP
 * (docs/kubernetes.md#the-hub-across-nodes): an HMAC-SHA256 with its own key over a fresh
 * timestamp and nonce, in the `Authorization` header of the WebSocket upgrade request. The
 * key never travels, and a captured header cannot be used again. Pure functions: the hub
 * calls `verifyHubAuthorization` before upgrading (hub/plugin-auth.ts); every SDK computes
 * `hubAuthorization` in its own language, and the test vector in the docs pins the bytes.
 */

export const HUB_AUTH_SCHEME = 'LogoMesh-HMAC-SHA256';
/** How far a request's timestamp may be from the hub's clock. */
export const HUB_AUTH_MAX_SKEW_MS = 60_000;
/** How long a nonce is remembered: longer than the skew on either side, so a replay is always caught. */
export const HUB_AUTH_NONCE_TTL_MS = 2 * HUB_AUTH_MAX_SKEW_MS;
/** Nonces remembered per plugin; a plugin connecting more often than this in the window is refused. */
export const HUB_AUTH_MAX_NONCES = 1024;

/** The signed text: a domain string, then each field on its own line. */
function signedText(pluginId: string, ts: number, nonce: string): string {
  return `logomesh-hub-v1\n${pluginId}\n${ts}\n${nonce}`;
}

function signature(key: Buffer, pluginId: string, ts: number, nonce: string): string {
  return createHmac('sha256', key).update(signedText(pluginId, ts, nonce)).digest('hex');
}

/** The header value a plugin sends: `nonce` is 32 lower-case hex digits from a CSPRNG, `ts` ms since the epoch. */
export function hubAuthorization(key: Buffer, pluginId: string, ts: number, nonce: string): string {
  return `${HUB_AUTH_SCHEME} plugin="${pluginId}", ts="${ts}", nonce="${nonce}", sig="${signature(key, pluginId, ts, nonce)}"`;
}

const HEADER = new RegExp(`^${HUB_AUTH_SCHEME} plugin="([a-z0-9-]{1,63})", ts="([0-9]{1,15})", nonce="([0-9a-f]{32})", sig="([0-9a-f]{64})"$`);

/** Nonces seen per plugin, each until it expires; bounded. */
export class NonceWindow {
  private readonly seen = new Map<string, Map<string, number>>();

  /** Record `nonce` for `pluginId` at `now`, unless it was seen within the window or the plugin's window is full. */
  admit(pluginId: string, nonce: string, now: number): 'admitted' | 'replayed' | 'too many connections' {
    let nonces = this.seen.get(pluginId);
    if (!nonces) this.seen.set(pluginId, (nonces = new Map()));
    for (const [n, at] of nonces) {
      // Insertion order is time order: stop at the first one still fresh.
      if (now - at < HUB_AUTH_NONCE_TTL_MS) break;
      nonces.delete(n);
    }
    if (nonces.has(nonce)) return 'replayed';
    if (nonces.size >= HUB_AUTH_MAX_NONCES) return 'too many connections';
    nonces.set(nonce, now);
    return 'admitted';
  }

  /** Forget a plugin (unloaded). */
  forget(pluginId: string): void {
    this.seen.delete(pluginId);
  }
}

export type HubAuthResult =
  | { readonly ok: true; readonly plugin: string }
  | { readonly ok: false; readonly code: 'LM_UNAUTHORIZED'; readonly plugin?: string; readonly reason: 'malformed' | 'unknown plugin' | 'stale' | 'replayed' | 'too many connections' | 'bad signature' };

/**
 * Check an upgrade request's `Authorization` header. `keyOf` gives a loaded plugin's key
 * (undefined: not loaded). The signature is compared in constant time, and only after the
 * cheap checks, so an unknown id or a stale request costs no HMAC. The nonce is recorded only
 * for a request whose signature is right: a forged header cannot use up a plugin's window.
 */
export function verifyHubAuthorization(header: string | undefined, keyOf: (pluginId: string) => Buffer | undefined, now: number, nonces: NonceWindow): HubAuthResult {
  const m = header === undefined ? null : HEADER.exec(header);
  if (!m) return { ok: false, code: 'LM_UNAUTHORIZED', reason: 'malformed' };
  const [, plugin, tsText, nonce, sig] = m as unknown as [string, string, string, string, string];
  const key = keyOf(plugin);
  if (!key) return { ok: false, code: 'LM_UNAUTHORIZED', plugin, reason: 'unknown plugin' };
  const ts = Number(tsText);
  if (Math.abs(now - ts) > HUB_AUTH_MAX_SKEW_MS) return { ok: false, code: 'LM_UNAUTHORIZED', plugin, reason: 'stale' };
  const expected = Buffer.from(signature(key, plugin, ts, nonce), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return { ok: false, code: 'LM_UNAUTHORIZED', plugin, reason: 'bad signature' };
  const admitted = nonces.admit(plugin, nonce, now);
  if (admitted !== 'admitted') return { ok: false, code: 'LM_UNAUTHORIZED', plugin, reason: admitted };
  return { ok: true, plugin };
}
