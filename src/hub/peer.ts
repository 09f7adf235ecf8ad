import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ErrorCode } from '../errors.js';
import { encode, type Encoded } from './codec.js';
import { packFrame } from './frames.js';
import type { HubMessage } from './protocol.js';
import { TokenBucket } from './token-bucket.js';
import { WriteBatch } from './write-batch.js';
import { LineBatch } from './line-batch.js';
import { PeerTally } from './peer-tally.js';

/** What one connection may ask of the hub. */
export interface PeerLimits {
  /** Requests, events, broadcasts and subscriptions a second, sustained (bursts of twice that). */
  readonly rate: number;
  /** Calls it may have waiting for answers at once. */
  readonly maxInFlight: number;
  /** Bytes the hub may hold for it unsent; past that it loses events, then its connection. */
  readonly maxQueuedBytes: number;
  /** Topics it may be subscribed to at once. */
  readonly maxSubscriptions: number;
  /** Largest message sent to it, in bytes. */
  readonly maxMessageBytes: number;
}

/** `sent`; `dropped` (an event or broadcast to a peer that does not keep up); `gone` (closed, or cut off now). */
export type Delivery = 'sent' | 'dropped' | 'gone';

/** Each connection's place in the heartbeat's rounds (connections.ts): connections in turn. */
let nextBeatSlot = 0;

/** Someone connected to the hub: a plugin (by its own socket), a host client, or the in-process host. */
export interface Peer {
  readonly id: string;
  readonly kind: 'plugin' | 'host';
  /** Where it connected from, for the audit trail (`unix`, `tcp:127.0.0.1`, `local`). */
  readonly origin: string;
  /** The host application in this process: messages reach it as values, never serialized. */
  readonly inProcess?: boolean;
  readonly limits: PeerLimits;
  readonly bucket: TokenBucket;
  readonly subscriptions: Set<string>;
  /** What the hub counts of it without a key a message (metrics, the audit of its calls). */
  readonly tally: PeerTally;
  /** Calls this peer made that wait for an answer. */
  inFlight: number;
  /**
   * performance.now() when it last answered one of its own open calls (calls.ts), or
   * undefined: a plugin that answered a call just now has proven what a health ping would
   * (health-pings.ts, answeredWithin in hub.ts). An answer to no open call is not counted.
   */
  lastAnswerAt?: number;
  /** Events and broadcasts it lost because it did not read them in time. */
  dropped: number;
  /** Deliver one message; `encoded` when the caller already serialized it (one encoding for many peers). */
  deliver(msg: HubMessage, encoded?: Encoded): Delivery;
  /** Stop reading from it for a while (a sender over its rate limit): its flood waits in its own buffers, not the hub's CPU. */
  hold?(ms: number): void;
}

/** Why a connection was cut off by the hub. */
export type CutOff = (peer: Peer, code: ErrorCode, reason: string) => void;

/**
 * A peer on a WebSocket. Every message to it counts against `maxQueuedBytes`: events and
 * broadcasts are dropped above it, and anything else (a response, an error, a request) cuts
 * the connection, so a client that never reads costs the controller at most that much.
 */
export class WsPeer implements Peer {
  readonly subscriptions = new Set<string>();
  readonly tally = new PeerTally();
  readonly bucket: TokenBucket;
  inFlight = 0;
  dropped = 0;
  lastAnswerAt: number | undefined;
  /** Frames to and from it are msgpack (its hello listed it); JSON text otherwise. */
  binary = false;
  /** Its hello offered batched frames: the JSON text frames of one turn leave in one message (line-batch.ts). */
  lines: LineBatch | undefined;
  /** Which of the heartbeat's rounds pings it (connections.ts HEARTBEAT_ROUNDS): the pings of many peers spread out. */
  readonly beatSlot = nextBeatSlot++;
  /** The payload of the hub's last heartbeat ping, and how many in a row went unanswered. */
  private nonce: Buffer | undefined;
  private missed = 0;
  /** performance.now() at its last heartbeat: an answer to a call after it proves the connection alive. */
  private beatAt = performance.now();
  /** A health probe was answered since the last heartbeat: the connection is proven alive for this one. */
  private proven = false;
  private held = false;
  private readonly batch: WriteBatch;

  constructor(
    readonly id: string,
    readonly kind: 'plugin' | 'host',
    readonly origin: string,
    readonly ws: WebSocket,
    readonly limits: PeerLimits,
    private readonly onCutOff: CutOff,
  ) {
    this.bucket = new TokenBucket(limits.rate);
    // ws keeps the socket it was upgraded on; it offers no public way to reach it.
    this.batch = new WriteBatch((ws as unknown as { _socket?: Duplex })._socket);
    // Only an answer to the hub's own ping counts: a pong sent unasked proves nothing.
    ws.on('pong', (data: Buffer) => {
      if (this.nonce && data.equals(this.nonce)) this.missed = 0;
    });
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  deliver(msg: HubMessage, encoded?: Encoded): Delivery {
    if (!this.open) return 'gone';
    const enc = encoded ?? encode(msg, Number.MAX_SAFE_INTEGER);
    if (!enc.ok) return 'dropped';
    // The JSON text was checked (depth, size, cycles); its msgpack form is made once and shared.
    const frame = this.binary ? (enc.binary ??= packFrame(msg)) : enc.text;
    const bytes = this.binary ? frame.length : enc.bytes;
    const queued = this.ws.bufferedAmount + (this.lines?.queued ?? 0);
    if (queued + bytes > this.limits.maxQueuedBytes) {
      if (msg.type === 'event' || msg.type === 'broadcast') {
        this.dropped++;
        return 'dropped';
      }
      this.cut('LM_BACKPRESSURE', `${queued} bytes were waiting to be read by ${this.id} (${this.origin}), over the limit of ${this.limits.maxQueuedBytes}`);
      return 'gone';
    }
    if (this.lines && !this.binary) {
      this.lines.add(frame as string, bytes);
      return 'sent';
    }
    this.batch.hold();
    this.ws.send(frame);
    return 'sent';
  }

  hold(ms: number): void {
    if (this.held || !this.open) return;
    this.held = true;
    this.ws.pause();
    setTimeout(() => {
      this.held = false;
      if (this.open) this.ws.resume();
    }, ms).unref();
  }

  /**
   * One heartbeat: false when the peer missed too many and was cut off. A peer that answered
   * a health probe (the controller's, every health.intervalMs) or one of its open calls
   * since the last heartbeat has shown within this interval what a pong would (it reads the
   * hub and writes back): it is not pinged again for it. Without the calls, a controller
   * whose plugins are all under calls (their health probes skipped, health-pings.ts) pinged
   * every one of them at once.
   */
  heartbeat(maxMissed: number): boolean {
    if (!this.open) return true;
    const answered = this.lastAnswerAt !== undefined && this.lastAnswerAt > this.beatAt;
    this.beatAt = performance.now();
    if (this.proven || answered) {
      this.proven = false;
      this.nonce = undefined;
      this.missed = 0;
      return true;
    }
    if (this.nonce && ++this.missed > maxMissed) {
      this.cut('LM_UNHEALTHY', `${this.id} (${this.origin}) did not answer ${this.missed} pings of the hub`);
      return false;
    }
    this.nonce = randomBytes(8);
    this.ws.ping(this.nonce);
    return true;
  }

  /** A health probe: true when the answer to this very ping arrives within `timeoutMs`. */
  probe(timeoutMs: number): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    const nonce = randomBytes(8);
    return new Promise((resolve) => {
      const onPong = (data: Buffer) => {
        if (!data.equals(nonce)) return;
        clearTimeout(timer);
        this.ws.off('pong', onPong);
        this.proven = true;
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.ws.off('pong', onPong);
        resolve(false);
      }, timeoutMs);
      this.ws.on('pong', onPong);
      this.ws.ping(nonce);
    });
  }

  /** Close at once, without waiting for what is queued (a peer that does not read never drains). */
  cut(code: ErrorCode, reason: string): void {
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.ws.terminate();
    this.onCutOff(this, code, reason);
  }
}
