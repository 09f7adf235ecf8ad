import { LogoMeshError } from '../errors.js';
import type { HubOptions } from './hub-types.js';
import type { PeerLimits } from './peer.js';
import { MAX_MAX_MESSAGE_BYTES } from './protocol.js';

/** The hub's largest message, checked: no SDK accepts more than MAX_MAX_MESSAGE_BYTES. */
export function checkedMaxBytes(maxBytes: number): number {
  if (maxBytes >= 1024 && maxBytes <= MAX_MAX_MESSAGE_BYTES) return maxBytes;
  throw new LogoMeshError('LM_USAGE', `the hub's maximum message size must be from 1024 to ${MAX_MAX_MESSAGE_BYTES} bytes (the most every SDK accepts), found ${maxBytes}`, { field: 'maxMessageBytes', expected: `1024 to ${MAX_MAX_MESSAGE_BYTES}`, found: String(maxBytes) });
}

/** A plugin's and a host client's limits on their connections. */
export function peerLimits(opts: HubOptions, maxMessageBytes: number): { plugin: PeerLimits; host: PeerLimits } {
  const common = { maxQueuedBytes: opts.maxQueuedBytes ?? 8 * maxMessageBytes, maxSubscriptions: opts.maxSubscriptions ?? 256, maxMessageBytes };
  const plugin = { ...common, rate: opts.rateLimit ?? 20_000, maxInFlight: opts.maxInFlight ?? 256 };
  return { plugin, host: { ...common, rate: opts.hostRateLimit ?? plugin.rate, maxInFlight: opts.hostMaxInFlight ?? plugin.maxInFlight } };
}
