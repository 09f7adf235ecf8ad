import { rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PluginPolicy } from './acl.js';
import type { PluginSlot } from './hub-types.js';
import type { Peer, WsPeer } from './peer.js';
import type { PluginCredential } from './plugin-auth.js';
import type { Hello } from './protocol.js';

export interface SlotsDeps {
  readonly log: Logger;
  /** Open a plugin's Unix socket; its connections are the hub's to accept for `slot`. */
  readonly listen: (id: string, socketPath: string, slot: PluginSlot) => Promise<Server>;
  /** Forget a plugin's TCP credential check state. */
  readonly forget: (id: string) => void;
  /** A slot's connection went away (the hub fails the calls waiting on it). */
  readonly peerGone: (slot: PluginSlot, peer: WsPeer | undefined) => void;
  /** Answer a held hello: the slot is ready on `peer`. */
  readonly admit: (peer: Peer, slot: PluginSlot, hello: Hello) => void;
}

/**
 * The one owner of which connection point (socket or TCP credential, and its connection) is
 * each plugin's: the current one, a replacement waiting for its hello (successor), the
 * replaced one finishing its calls (retiring), and a warm standby held beside the current
 * one. The hub routes frames; this decides whose they are.
 */
export class Slots {
  /** Each attached plugin's current connection point. */
  readonly current = new Map<string, PluginSlot>();
  /** A replacement's connection point, until its hello makes it current (promote). */
  private readonly successors = new Map<string, PluginSlot>();
  /** A replaced plugin's old connection point, answering the calls it already had. */
  private readonly retiring = new Map<string, PluginSlot>();

  constructor(private readonly deps: SlotsDeps) {}

  /** Is `slot` a replacement waiting for its hello? */
  isSuccessor(slot: PluginSlot): boolean {
    return this.successors.get(slot.policy.id) === slot;
  }

  /** A replaced plugin's old connection point, if it is still finishing calls. */
  retiringSlot(id: string): PluginSlot | undefined {
    return this.retiring.get(id);
  }

  /** Open the socket a plugin will connect to. Its folder must exist only for this plugin. */
  async attachPlugin(policy: PluginPolicy, socketPath: string): Promise<void> {
    if (this.current.has(policy.id)) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin ${policy.id} is already attached to the hub`, { plugin: policy.id });
    const slot: PluginSlot = { policy, socketPath, ready: false, methods: [] };
    slot.server = await this.deps.listen(policy.id, socketPath, slot);
    this.current.set(policy.id, slot);
  }

  /**
   * Open the socket of a plugin's replacement (a new container of an attached plugin, with
   * its new manifest's policy). Calls keep going to the current connection until the
   * replacement's hello is accepted; from then on they go to the replacement, and the old
   * connection becomes the retiring one: it answers the calls it already has, and may still
   * call others, until `retire` and `detachRetiring`. No call fails on the way. A plugin not
   * attached yet is simply attached.
   */
  async attachSuccessor(policy: PluginPolicy, socketPath: string): Promise<void> {
    if (!this.current.has(policy.id)) return this.attachPlugin(policy, socketPath);
    if (this.successors.has(policy.id)) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin ${policy.id} is already being replaced`, { plugin: policy.id });
    const slot: PluginSlot = { policy, socketPath, ready: false, methods: [] };
    slot.server = await this.deps.listen(policy.id, socketPath, slot);
    this.successors.set(policy.id, slot);
  }

  /** Let a plugin connect over TCP (listenPlugins) with its own key. */
  attachRemotePlugin(policy: PluginPolicy, credential: PluginCredential): void {
    if (this.current.has(policy.id)) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin ${policy.id} is already attached to the hub`, { plugin: policy.id });
    this.current.set(policy.id, { policy, credential, ready: false, methods: [] });
  }

  /** Close a plugin's socket and connection (and its standby's); its open calls fail with LM_PLUGIN_EXITED. */
  async detachPlugin(id: string): Promise<void> {
    const slot = this.current.get(id);
    if (!slot) return;
    this.current.delete(id);
    this.deps.forget(id);
    await Promise.all([this.closeSlot(slot), this.detachStandby(id, slot)]);
  }

  /** Give up a replacement that did not say hello (its start failed): the current connection keeps serving. */
  async detachSuccessor(id: string): Promise<void> {
    const slot = this.successors.get(id);
    if (!slot) return;
    this.successors.delete(id);
    await this.closeSlot(slot);
  }

  /** Close a replaced plugin's old connection; calls it still has fail with LM_PLUGIN_EXITED. */
  async detachRetiring(id: string): Promise<void> {
    const slot = this.retiring.get(id);
    if (!slot) return;
    this.retiring.delete(id);
    await this.closeSlot(slot);
  }

  /**
   * Open a second connection point for an attached plugin: a warm standby's (a second
   * container of the same plugin, with the same sandbox). Its hello is checked as any
   * plugin's, then held unanswered: nothing is routed to it and it may send nothing else
   * (LM_PROTOCOL) until `switchToStandby`. One standby at a time: a new one replaces the old.
   */
  async attachStandby(id: string, socketPath: string): Promise<void> {
    const slot = this.current.get(id);
    if (!slot) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `plugin ${id} is not attached to the hub: it has no place for a standby`, { plugin: id });
    await this.detachStandby(id, slot);
    const standby: PluginSlot = { policy: slot.policy, socketPath, ready: false, methods: [] };
    standby.server = await this.deps.listen(id, socketPath, standby);
    slot.standby = standby;
  }

  /** Close a plugin's standby connection point and connection (the standby container is the caller's). */
  async detachStandby(id: string, slot = this.current.get(id)): Promise<void> {
    const standby = slot?.standby;
    if (!slot || !standby) return;
    delete slot.standby;
    standby.peer?.ws.terminate();
    this.deps.peerGone(standby, standby.peer);
    await closeSlot(standby);
  }

  /** Has the plugin's standby said hello (it can be switched in at once)? */
  standbyWaiting(id: string): boolean {
    const standby = this.current.get(id)?.standby;
    return !!standby?.heldHello && !!standby.peer?.open;
  }

  /**
   * Switch a plugin to its standby, in this turn: the active connection is closed (calls
   * waiting on it fail with LM_PLUGIN_EXITED), the standby's hello is answered and the
   * plugin is ready again on the standby's connection ('ready' is emitted). False, with
   * nothing changed, when the standby has not said hello or is gone.
   */
  switchToStandby(id: string): boolean {
    const slot = this.current.get(id);
    const standby = slot?.standby;
    const peer = standby?.peer;
    if (!slot || !standby || !standby.heldHello || !peer?.open) return false;
    const old = slot.peer;
    slot.peer = undefined;
    slot.ready = false;
    delete slot.standby;
    if (old) {
      old.ws.terminate();
      this.deps.peerGone(slot, old);
    }
    void closeSlot(slot);
    // The standby's slot, connection and socket already belong together: it takes the place.
    this.current.set(id, standby);
    const hello = standby.heldHello;
    delete standby.heldHello;
    this.deps.admit(peer, standby, hello);
    return true;
  }

  async closeSlot(slot: PluginSlot): Promise<void> {
    slot.peer?.ws.terminate();
    this.deps.peerGone(slot, slot.peer);
    await new Promise<void>((resolve) => (slot.server ? slot.server.close(() => resolve()) : resolve()));
    if (slot.socketPath) rmSync(slot.socketPath, { force: true });
  }

  /**
   * The handover: a replacement said hello, so from this message on the plugin's calls,
   * events and health checks go to it. The old connection keeps its calls in flight (their
   * answers still route to their callers) and is kept as the retiring one.
   */
  promote(slot: PluginSlot): void {
    const id = slot.policy.id;
    const old = this.current.get(id);
    this.successors.delete(id);
    this.current.set(id, slot);
    if (!old) return;
    const earlier = this.retiring.get(id);
    if (earlier) void this.closeSlot(earlier);
    this.retiring.set(id, old);
    this.deps.log.info({ plugin: id }, 'handover: calls go to the replacement; the old connection finishes what it has');
  }

  /** Close every connection point. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.current.keys()].map((id) => this.detachPlugin(id)));
    await Promise.all([...this.successors.keys()].map((id) => this.detachSuccessor(id)));
    await Promise.all([...this.retiring.keys()].map((id) => this.detachRetiring(id)));
  }
}

async function closeSlot(slot: PluginSlot): Promise<void> {
  await new Promise<void>((resolve) => (slot.server ? slot.server.close(() => resolve()) : resolve()));
  if (slot.socketPath) rmSync(slot.socketPath, { force: true });
}
