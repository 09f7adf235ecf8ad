import { LogoMeshError } from '../errors.js';
import type { CallTarget } from './calls.js';
import type { WsPeer } from './peer.js';

/**
 * Host methods served by host clients on the TCP endpoint (docs/protocol.md#register): a
 * client with the token registers names the operator declared (`logomesh up
 * --host-methods`, LOGOMESH_HOST_METHODS); a plugin's call to one is routed to that client
 * as a request, with the same ACL, limits, timeouts and audit as a call to a plugin. A
 * registration lasts as long as its connection.
 */
export class RemoteHostMethods {
  private readonly served = new Map<string, WsPeer>();
  private readonly targets = new Map<WsPeer, CallTarget>();
  /** The names the operator declared: the only ones a host client may register. */
  readonly declared: ReadonlySet<string>;

  constructor(declared: readonly string[]) {
    this.declared = new Set(declared);
  }

  /**
   * Register `names` for `peer`. All or none: a name not declared is LM_PERMISSION_DENIED,
   * one served in this process or by another client LM_PLUGIN_CONFLICT.
   */
  register(peer: WsPeer, names: readonly string[], servedLocally: (name: string) => boolean): void {
    const undeclared = names.filter((n) => !this.declared.has(n));
    if (undeclared.length) {
      const known = [...this.declared].join(', ') || 'none';
      throw new LogoMeshError('LM_PERMISSION_DENIED', `host methods not declared by the operator: ${undeclared.join(', ')} (declared: ${known}; declare them with 'logomesh up --host-methods' or LOGOMESH_HOST_METHODS)`, { expected: 'declared host methods', found: undeclared.join(', ') });
    }
    const taken = names.filter((n) => servedLocally(n) || (this.served.has(n) && this.served.get(n) !== peer));
    if (taken.length) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `host methods already served by another host application: ${taken.join(', ')}`, { found: taken.join(', ') });
    for (const n of names) this.served.set(n, peer);
    if (!this.targets.has(peer)) this.targets.set(peer, { id: peer.id, peer, waiting: 0, waitingBytes: 0 });
  }

  /** Where a call to `name` goes: the client serving it, if one does. */
  targetOf(name: string): CallTarget | undefined {
    const peer = this.served.get(name);
    return peer && peer.open ? this.targets.get(peer) : undefined;
  }

  /** A client went away: its names are free again. Returns its call target, whose open calls the caller fails. */
  drop(peer: WsPeer): CallTarget | undefined {
    for (const [name, p] of this.served) if (p === peer) this.served.delete(name);
    const target = this.targets.get(peer);
    this.targets.delete(peer);
    return target;
  }
}
