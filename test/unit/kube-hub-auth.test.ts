import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HUB_AUTH_MAX_NONCES, HUB_AUTH_MAX_SKEW_MS, HUB_AUTH_NONCE_TTL_MS, hubAuthorization, NonceWindow, verifyHubAuthorization } from '../../src/kubernetes/hub-auth.js';

const keys: Record<string, Buffer> = { analyzer: Buffer.alloc(32, 7), thoughts: randomBytes(32) };
const keyOf = (id: string) => keys[id];
const T = 1_780_000_000_000;
const nonce = (i = 0) => i.toString(16).padStart(32, '0');

describe('the hub handshake across nodes (a pure reference for the hub and the SDKs)', () => {
  it('the test vector every SDK reproduces (docs/kubernetes.md)', () => {
    expect(hubAuthorization(Buffer.alloc(32, 7), 'analyzer', T, '0123456789abcdef0123456789abcdef')).toBe(
      'LogoMesh-HMAC-SHA256 plugin="analyzer", ts="1780000000000", nonce="0123456789abcdef0123456789abcdef", sig="' +
        // HMAC-SHA256(32 bytes of 0x07, "logomesh-hub-v1\nanalyzer\n1780000000000\n0123456789abcdef0123456789abcdef")
        VECTOR_SIG +
        '"',
    );
  });

  it('accepts a fresh, correctly signed request and names the plugin', () => {
    expect(verifyHubAuthorization(hubAuthorization(keys.thoughts!, 'thoughts', T, nonce(1)), keyOf, T + 5_000, new NonceWindow())).toEqual({ ok: true, plugin: 'thoughts' });
  });

  it("refuses another plugin's key, a changed field, an unknown id and a malformed header", () => {
    const w = new NonceWindow();
    const forged = hubAuthorization(keys.thoughts!, 'analyzer', T, nonce(2));
    expect(verifyHubAuthorization(forged, keyOf, T, w)).toMatchObject({ ok: false, code: 'LM_UNAUTHORIZED', plugin: 'analyzer', reason: 'bad signature' });
    const good = hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(3));
    expect(verifyHubAuthorization(good.replace(`ts="${T}"`, `ts="${T + 1}"`), keyOf, T, w)).toMatchObject({ reason: 'bad signature' });
    expect(verifyHubAuthorization(good.replace('plugin="analyzer"', 'plugin="thoughts"'), keyOf, T, w)).toMatchObject({ reason: 'bad signature' });
    expect(verifyHubAuthorization(hubAuthorization(randomBytes(32), 'ghost', T, nonce(4)), keyOf, T, w)).toMatchObject({ reason: 'unknown plugin' });
    for (const bad of [undefined, '', 'Bearer abc', good.toUpperCase(), `${good} `, good.replace('sig="', 'sig="0'), good.replace(/nonce="[0-9a-f]+"/, 'nonce="short"')]) {
      expect(verifyHubAuthorization(bad, keyOf, T, w)).toMatchObject({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses a request more than 60 s from the hub clock, either way', () => {
    const w = new NonceWindow();
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(5)), keyOf, T + HUB_AUTH_MAX_SKEW_MS, w).ok).toBe(true);
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(6)), keyOf, T + HUB_AUTH_MAX_SKEW_MS + 1, w)).toMatchObject({ reason: 'stale' });
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T + HUB_AUTH_MAX_SKEW_MS + 1, nonce(7)), keyOf, T, w)).toMatchObject({ reason: 'stale' });
  });

  it('refuses a replayed header for as long as its timestamp could still pass', () => {
    const w = new NonceWindow();
    const h = hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(8));
    expect(verifyHubAuthorization(h, keyOf, T, w).ok).toBe(true);
    expect(verifyHubAuthorization(h, keyOf, T + 1, w)).toMatchObject({ reason: 'replayed' });
    expect(verifyHubAuthorization(h, keyOf, T + HUB_AUTH_MAX_SKEW_MS, w)).toMatchObject({ reason: 'replayed' });
    // Past the skew the timestamp alone refuses it; the nonce may then be forgotten.
    expect(HUB_AUTH_NONCE_TTL_MS).toBeGreaterThan(2 * HUB_AUTH_MAX_SKEW_MS - 1);
    expect(verifyHubAuthorization(h, keyOf, T + HUB_AUTH_MAX_SKEW_MS + 1, w)).toMatchObject({ reason: 'stale' });
  });

  it('a forged header does not use up the window; a real flood of connections is bounded per plugin', () => {
    const w = new NonceWindow();
    for (let i = 0; i < HUB_AUTH_MAX_NONCES + 10; i++) verifyHubAuthorization(hubAuthorization(randomBytes(32), 'analyzer', T, nonce(100 + i)), keyOf, T, w);
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(9)), keyOf, T, w).ok).toBe(true);
    const flood = new NonceWindow();
    let accepted = 0;
    for (let i = 0; i < HUB_AUTH_MAX_NONCES + 5; i++) if (verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T, nonce(5000 + i)), keyOf, T, flood).ok) accepted++;
    expect(accepted).toBe(HUB_AUTH_MAX_NONCES);
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T + 1, nonce(1)), keyOf, T + 1, flood)).toMatchObject({ reason: 'too many connections' });
    // Once the window has passed, the plugin connects again.
    expect(verifyHubAuthorization(hubAuthorization(keys.analyzer!, 'analyzer', T + HUB_AUTH_NONCE_TTL_MS, nonce(1)), keyOf, T + HUB_AUTH_NONCE_TTL_MS, flood).ok).toBe(true);
  });
});

/** Computed with Python's hmac module, a second implementation: HMAC-SHA256(key, text).hexdigest(). */
const VECTOR_SIG = '68534c9927a1ceef4d282c2b274fd8d638d75733d050ede5a61c87939409c584';
