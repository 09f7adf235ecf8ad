import { encode, type Encoded } from './codec.js';
import { ENVELOPE_BYTES } from './calls.js';
import type { Peer } from './peer.js';
import { topicMatches, type Broadcast, type EventMsg } from './protocol.js';

export interface PubSubOptions {
  readonly maxMessageBytes: number;
  readonly nextId: () => string;
  /** Everyone who may receive: ready plugins, host clients and the in-process host. */
  readonly peers: () => Iterable<Peer>;
  /** A peer by id, for events with `to` (`host` is the in-process host). */
  readonly peer: (id: string) => Peer | undefined;
  /** May this peer hear this topic now (its manifest, the operator's revocations)? */
  readonly mayReceive: (peer: Peer, topic: string) => boolean;
}

/**
 * Events and broadcasts. An event with `to` goes to those peers; anything with a topic goes
 * to its subscribers; a broadcast without a topic goes to every plugin and host client. The
 * message is serialized once for all of them. A subscriber that does not keep up loses
 * events (counted) rather than stall the hub.
 */
export class PubSub {
  constructor(private readonly opts: PubSubOptions) {}

  subscribe(peer: Peer, topic: string): boolean {
    if (peer.subscriptions.has(topic)) return true;
    if (peer.subscriptions.size >= peer.limits.maxSubscriptions) return false;
    peer.subscriptions.add(topic);
    return true;
  }

  unsubscribe(peer: Peer, topic: string): void {
    peer.subscriptions.delete(topic);
  }

  /** Relay a message from `sender`; returns how many peers it was sent to. */
  publish(sender: Peer, msg: EventMsg | Broadcast): number {
    const out = { ...msg, id: this.opts.nextId(), from: sender.id, timestamp: Date.now() } as EventMsg | Broadcast;
    let enc: Encoded | undefined;
    let sent = 0;
    for (const t of this.recipients(sender, msg)) {
      if (!t.inProcess) {
        enc ??= encode(out, this.opts.maxMessageBytes + ENVELOPE_BYTES);
        if (!enc.ok) return 0;
      }
      if (t.deliver(out, t.inProcess ? undefined : enc) === 'sent') sent++;
    }
    return sent;
  }

  private recipients(sender: Peer, msg: EventMsg | Broadcast): Peer[] {
    if (msg.type === 'event' && msg.to) {
      return msg.to.flatMap((id) => {
        const p = this.opts.peer(id);
        return p && this.opts.mayReceive(p, msg.topic) ? [p] : [];
      });
    }
    const topic = msg.topic;
    const out: Peer[] = [];
    for (const t of this.opts.peers()) {
      if (t === sender) continue;
      const subscribed = topic !== undefined && subscribedTo(t, topic) && this.opts.mayReceive(t, topic);
      // A broadcast without a topic (the host's alone) goes to every connected peer, not the in-process host.
      if (subscribed || (msg.type === 'broadcast' && topic === undefined && !t.inProcess)) out.push(t);
    }
    return out;
  }
}

function subscribedTo(peer: Peer, topic: string): boolean {
  for (const s of peer.subscriptions) if (topicMatches(s, topic)) return true;
  return false;
}
