import type { Decision } from './acl.js';
import type { SegmentMsg, SegmentRef } from './protocol.js';

/**
 * What the hub needs of the shared-memory pool, which it does not own (the controller
 * gives it one): a plugin's `segment` requests, and the check of the handles a message
 * carries before it reaches its receiver. The hub only routes; the pool decides and audits.
 */
export interface SegmentBroker {
  /** A plugin's `segment` message. Resolves with the answer's data; rejects with a coded LogoMeshError. */
  request(pluginId: string, msg: SegmentMsg): Promise<unknown>;
  /**
   * May `receiver` open every segment in `refs` once `sender` (a plugin id, or `host`) sends
   * them? The sender must hold each one; a receiver without access gets it when the sender
   * owns the segment and asks (`grant`), audited. Never rejects.
   */
  pass(sender: string, receiver: string, refs: readonly SegmentRef[]): Promise<Decision>;
}
