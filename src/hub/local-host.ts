import { LogoMeshError, type ErrorCode } from '../errors.js';
import { CallTable } from './call-table.js';
import { valueDepth } from './codec.js';
import type { Delivery, Peer, PeerLimits } from './peer.js';
import { HOST, MAX_DEPTH, topicMatches, type ClientMessage, type HubMessage } from './protocol.js';
import { TokenBucket } from './token-bucket.js';
import { PeerTally } from './peer-tally.js';

export type TopicHandler = (data: unknown, meta: { from: string; topic: string }) => void;

/** Nesting allowed for data made in this process: it sits one level inside its frame. */
const MAX_DATA_DEPTH = MAX_DEPTH - 1;

/**
 * The host application in the controller's own process, as a peer that never touches a
 * socket: its calls, events and subscriptions go through the same steps as a client's
 * (`dispatch`), and what the hub sends it arrives as values.
 */
export class LocalHost implements Peer {
  readonly id = HOST;
  readonly kind = 'host' as const;
  readonly origin = 'local';
  readonly inProcess = true;
  readonly subscriptions = new Set<string>();
  readonly tally = new PeerTally();
  readonly bucket = new TokenBucket(Number.MAX_SAFE_INTEGER);
  inFlight = 0;
  dropped = 0;
  /** By the hub id of each call; not a Map (call-table.ts says why). */
  private readonly waiters = new CallTable<{ resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly handlers = new Map<string, Set<TopicHandler>>();

  constructor(
    readonly limits: PeerLimits,
    private readonly dispatch: (peer: Peer, msg: ClientMessage) => void,
    private readonly nextId: () => string,
    private readonly onHandlerError: (topic: string, err: unknown) => void,
  ) {}

  call(target: string, method: string, data: unknown, timeoutMs: number): Promise<unknown> {
    try {
      checkDepth(data);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      this.dispatch(this, { type: 'request', id, to: [target], method, data, timeout: timeoutMs });
    });
  }

  subscribe(topic: string, handler: TopicHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    set.add(handler);
    this.subscriptions.add(topic);
    return () => {
      set.delete(handler);
      if (set.size === 0) {
        this.handlers.delete(topic);
        this.subscriptions.delete(topic);
      }
    };
  }

  emitEvent(topic: string, data: unknown, to?: string[]): void {
    checkDepth(data);
    this.dispatch(this, { type: 'event', id: this.nextId(), topic, data, ...(to ? { to } : {}) });
  }

  broadcast(topic: string | undefined, data: unknown): void {
    checkDepth(data);
    this.dispatch(this, { type: 'broadcast', id: this.nextId(), data, ...(topic ? { topic } : {}) });
  }

  deliver(msg: HubMessage): Delivery {
    if (msg.type === 'response') {
      const w = this.waiters.get(msg.correlationId);
      if (!w) return 'dropped';
      this.waiters.delete(msg.correlationId);
      if (msg.success) w.resolve(msg.data);
      else w.reject(new LogoMeshError((msg.error?.code ?? 'LM_PLUGIN_ERROR') as ErrorCode, msg.error?.message ?? 'call failed', { details: msg.error?.details, remote: msg.from }));
    } else if (msg.type === 'event' || msg.type === 'broadcast') {
      const topic = msg.topic ?? '';
      for (const [pattern, handlers] of this.handlers) {
        if (!topicMatches(pattern, topic)) continue;
        for (const h of handlers) {
          // A host handler that throws is the host's bug: it must not stop the hub.
          try {
            h(msg.data, { from: msg.from ?? '?', topic });
          } catch (err) {
            this.onHandlerError(topic, err);
          }
        }
      }
    }
    return 'sent';
  }

  /** Fail every call still waiting (the hub closed). */
  failAll(code: ErrorCode, message: string): void {
    for (const [id, w] of this.waiters.entries()) {
      this.waiters.delete(id);
      w.reject(new LogoMeshError(code, message, {}));
    }
  }
}

function checkDepth(data: unknown): void {
  const depth = valueDepth(data, MAX_DATA_DEPTH);
  if (depth > MAX_DATA_DEPTH) {
    throw new LogoMeshError('LM_PROTOCOL', Number.isFinite(depth) ? `data nests more than ${MAX_DATA_DEPTH} levels deep` : 'data refers to itself (a cycle) and cannot be sent', { expected: `at most ${MAX_DATA_DEPTH} levels`, found: Number.isFinite(depth) ? `more than ${MAX_DATA_DEPTH}` : 'a cycle' });
  }
}
