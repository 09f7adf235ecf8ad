import type { RawData, WebSocket } from 'ws';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Calls } from './calls.js';
import type { PluginSlot } from './hub-types.js';
import { WsPeer, type PeerLimits } from './peer.js';
import { HOST } from './protocol.js';
import type { RemoteHostMethods } from './remote-host-methods.js';
import type { Slots } from './slots.js';
import type { Verdicts } from './verdicts.js';

/** How long calls to a plugin whose connection closed wait to learn why, at most. */
const EXIT_CAUSE_WAIT_MS = 2_000;

/** Misses of the hub's own pings after which a connection is dropped. */
const MAX_MISSED_PINGS = 2;

/**
 * The heartbeat's rounds in one ping interval: each connection is pinged in its own round
 * (WsPeer.beatSlot), once an interval as before, but the connections' pings do not leave
 * together. Pinging 200 plugins in one turn woke 200 processes at once every 10 s: 20-50 ms
 * in which both cores were busy and the calls of that moment waited
 * (docs/performance.md#the-heartbeats-burst-2026-12-06).
 */
export const HEARTBEAT_ROUNDS = 10;

export interface ConnectionsDeps {
  readonly log: Logger;
  readonly slots: Slots;
  readonly calls: Calls;
  readonly remoteMethods: RemoteHostMethods;
  readonly verdicts: Verdicts;
  readonly pluginLimits: PeerLimits;
  readonly hostLimits: PeerLimits;
  readonly pingIntervalMs: number;
  readonly nextId: () => string;
  /** Why a plugin's connection closed by itself, once the controller knows (its exit). */
  readonly exitCause?: ((pluginId: string) => Promise<{ code: ErrorCode; message: string } | undefined>) | undefined;
  /** Every frame a connection receives. */
  onFrame(peer: WsPeer, slot: PluginSlot | undefined, raw: Buffer, isBinary: boolean): void;
  /** A plugin's current connection closed ('disconnected'), or its standby's ('standby-lost'). */
  onClosed(event: 'disconnected' | 'standby-lost', pluginId: string): void;
}

/**
 * The hub's WebSocket connections: a plugin's on its slot, the host clients' in a set, the
 * heartbeat that drops a connection that no longer answers pings, and what follows a
 * connection's end (its calls fail, calls from it are forgotten).
 */
export class Connections {
  /** Host clients connected over TCP. */
  readonly hosts = new Set<WsPeer>();
  private readonly heartbeat: NodeJS.Timeout;
  private round = 0;

  constructor(private readonly deps: ConnectionsDeps) {
    this.heartbeat = setInterval(() => this.heartbeatTick(), Math.max(1, deps.pingIntervalMs / HEARTBEAT_ROUNDS));
    this.heartbeat.unref();
  }

  /** A plugin connected to its slot's socket (or, remote, proved its key). A second connection replaces the first. */
  acceptPlugin(slot: PluginSlot, ws: WebSocket, origin = 'unix'): void {
    const id = slot.policy.id;
    if (slot.peer) {
      this.deps.log.warn({ plugin: id }, 'a second connection replaces the first');
      const old = slot.peer;
      slot.peer = undefined;
      old.ws.terminate();
      this.peerGone(slot, old);
    }
    const peer = new WsPeer(id, 'plugin', origin, ws, this.deps.pluginLimits, (p, code, reason) => this.deps.verdicts.violation(p, code, `connection closed by the hub: ${reason}`, 'cut'));
    slot.peer = peer;
    slot.target = { id, peer, waiting: 0, waitingBytes: 0 };
    slot.ready = false;
    ws.on('message', (raw: RawData, isBinary: boolean) => this.deps.onFrame(peer, slot, raw as Buffer, isBinary));
    ws.on('close', () => this.pluginClosed(slot, peer));
    ws.on('error', (err: Error & { code?: string }) => {
      this.deps.log.debug({ plugin: id, err: err.message }, 'plugin socket error');
      this.socketError(peer, err);
    });
  }

  /** A host client connected over TCP with the token. */
  acceptHost(ws: WebSocket, origin: string): void {
    const peer = new WsPeer(HOST, 'host', origin, ws, this.deps.hostLimits, (p, code, reason) => this.deps.verdicts.violation(p, code, `connection closed by the hub: ${reason}`, 'cut'));
    this.hosts.add(peer);
    ws.on('message', (raw: RawData, isBinary: boolean) => this.deps.onFrame(peer, undefined, raw as Buffer, isBinary));
    ws.on('close', () => {
      this.hosts.delete(peer);
      this.deps.calls.callerGone(peer);
      const served = this.deps.remoteMethods.drop(peer);
      if (served) this.deps.calls.targetGone(served, `(the host application at ${peer.origin}) disconnected`);
    });
    ws.on('error', (err: Error & { code?: string }) => this.socketError(peer, err));
  }

  /** Ask a connection's plugin to shut down (it finishes in-flight calls, then exits). */
  shutdown(peer: WsPeer | undefined, graceMs: number): boolean {
    if (!peer) return false;
    peer.deliver({ type: 'shutdown', id: this.deps.nextId(), data: { graceMs } });
    return true;
  }

  /**
   * A plugin's connection went away: calls to it fail (at once, or, when it closed by
   * itself, once the controller says why: `askWhy`), calls from it are forgotten. No new
   * call reaches it from this moment.
   */
  peerGone(slot: PluginSlot, peer: WsPeer | undefined, askWhy = false): void {
    const target = slot.target;
    if (target && (!peer || target.peer === peer)) {
      slot.target = undefined;
      const cause = askWhy && target.waiting > 0 ? this.deps.exitCause?.(slot.policy.id) : undefined;
      if (!cause) this.deps.calls.targetGone(target, 'exited or disconnected');
      else {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), EXIT_CAUSE_WAIT_MS)));
        void Promise.race([cause.catch(() => undefined), late]).then((c) => {
          clearTimeout(timer);
          this.deps.calls.targetGone(target, 'exited or disconnected', c);
        });
      }
    }
    if (peer) this.deps.calls.callerGone(peer);
  }

  /** Stop the heartbeat and drop every host client. */
  close(): void {
    clearInterval(this.heartbeat);
    for (const peer of this.hosts) peer.ws.terminate();
  }

  private pluginClosed(slot: PluginSlot, peer: WsPeer): void {
    if (slot.peer !== peer) return;
    const id = slot.policy.id;
    slot.peer = undefined;
    slot.ready = false;
    delete slot.heldHello;
    const primary = this.deps.slots.current.get(id) === slot;
    this.peerGone(slot, peer, primary);
    // A retiring or not yet promoted connection is not the plugin's: its end says nothing of the plugin.
    if (primary) this.deps.onClosed('disconnected', id);
    else if (this.deps.slots.current.get(id)?.standby === slot) this.deps.onClosed('standby-lost', id);
  }

  private socketError(peer: WsPeer, err: Error & { code?: string }): void {
    // ws closes the connection after this (1009 for a frame over the hard limit, 1002/1007 otherwise).
    const code: ErrorCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'LM_MESSAGE_TOO_LARGE' : 'LM_PROTOCOL';
    this.deps.verdicts.violation(peer, code, `connection closed: ${err.message}`, 'closed');
  }

  /** One round: the connections whose turn it is (each one's turn comes once a ping interval). */
  private heartbeatTick(): void {
    const round = this.round;
    this.round = (round + 1) % HEARTBEAT_ROUNDS;
    const beat = (peer: WsPeer | undefined): void => void (peer && peer.beatSlot % HEARTBEAT_ROUNDS === round && peer.heartbeat(MAX_MISSED_PINGS));
    for (const slot of this.deps.slots.current.values()) {
      beat(slot.peer);
      beat(slot.standby?.peer);
    }
    for (const peer of this.hosts) beat(peer);
  }
}
