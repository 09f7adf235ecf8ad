import { NonceWindow, verifyHubAuthorization, type HubAuthResult } from '../kubernetes/hub-auth.js';
import { TokenBucket } from './token-bucket.js';

/** A plugin's key as the hub holds it, and how to read it again (its Secret may have been rotated). */
export interface PluginCredential {
  key(): Buffer | undefined;
  /** Read the key afresh from where it is kept; undefined when there is none any more. */
  reload?(): Promise<Buffer | undefined>;
}

/** Failed handshakes a second one source address may cost the hub (bursts of twice that). */
export const FAILED_HANDSHAKES_PER_SECOND = 10;
/** Source addresses whose failure budget is kept; the oldest is forgotten beyond this. */
const MAX_TRACKED_ADDRESSES = 4096;

export type PluginAuthResult = HubAuthResult | { readonly ok: false; readonly code: 'LM_RATE_LIMITED'; readonly reason: 'too many failed handshakes' };

/**
 * The check of a plugin's upgrade request on the hub's TCP plugin port
 * (docs/kubernetes.md#the-hub-across-nodes): `verifyHubAuthorization` against the plugin's
 * key, read again once on a bad signature (the key may have been rotated), and a token
 * bucket of failed handshakes per source address, so a flood of forged headers costs at
 * most a few HMACs a second each.
 */
export class PluginAuthenticator {
  private readonly nonces = new NonceWindow();
  private readonly failures = new Map<string, TokenBucket>();

  constructor(private readonly credentialOf: (pluginId: string) => PluginCredential | undefined) {}

  async check(header: string | undefined, address: string, now = Date.now()): Promise<PluginAuthResult> {
    const bucket = this.failures.get(address);
    // Only spent by failures, so one probe per address is free; an exhausted one is refused before any work.
    if (bucket && !bucket.peek()) return { ok: false, code: 'LM_RATE_LIMITED', reason: 'too many failed handshakes' };
    let result = verifyHubAuthorization(header, (id) => this.credentialOf(id)?.key(), now, this.nonces);
    if (!result.ok && result.reason === 'bad signature' && result.plugin !== undefined) {
      const credential = this.credentialOf(result.plugin);
      if (credential?.reload && (await credential.reload())) result = verifyHubAuthorization(header, (id) => this.credentialOf(id)?.key(), now, this.nonces);
    }
    if (!result.ok) this.failed(address);
    return result;
  }

  /** Forget a plugin's nonces (it was unloaded). */
  forget(pluginId: string): void {
    this.nonces.forget(pluginId);
  }

  private failed(address: string): void {
    let bucket = this.failures.get(address);
    if (!bucket) {
      if (this.failures.size >= MAX_TRACKED_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
      this.failures.set(address, (bucket = new TokenBucket(FAILED_HANDSHAKES_PER_SECOND)));
    }
    bucket.take();
  }
}
