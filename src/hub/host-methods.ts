import { LogoMeshError } from '../errors.js';
import { encode, valueDepth } from './codec.js';
import { ENVELOPE_BYTES } from './calls.js';
import type { Peer } from './peer.js';
import { HOST, MAX_DEPTH, type Request, type Response } from './protocol.js';

export type HostMethod = (data: unknown, ctx: { from: string }) => unknown;

/**
 * Methods the host application serves to plugins. Whatever a handler returns or throws, the
 * caller gets an answer that can be sent: a result too deep, too large or not JSON at all
 * becomes a coded error instead of an exception in the hub.
 */
export class HostMethods {
  private readonly handlers = new Map<string, HostMethod>();
  /** The names, kept as a set for the ACL on every call: these and the ones declared for host clients (remote-host-methods.ts). */
  readonly names = new Set<string>();

  register(name: string, handler: HostMethod): void {
    this.handlers.set(name, handler);
    this.names.add(name);
  }

  /** Does the application in this process serve it? */
  serves(name: string): boolean {
    return this.handlers.has(name);
  }

  async invoke(peer: Peer, msg: Request, maxBytes: number, nextId: () => string): Promise<void> {
    const base = { type: 'response', id: nextId(), from: HOST, correlationId: msg.id } as const;
    let reply: Response;
    try {
      const data = await this.handlers.get(msg.method)!(msg.data, { from: peer.id });
      reply = { ...base, success: true, data, timestamp: Date.now() };
      if (valueDepth(data, MAX_DEPTH - 1) > MAX_DEPTH - 1) throw new LogoMeshError('LM_PROTOCOL', `host method ${msg.method} returned data nested more than ${MAX_DEPTH - 1} levels deep (or a cycle)`, {});
    } catch (err) {
      const e = err instanceof LogoMeshError ? { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } : { code: 'LM_PLUGIN_ERROR', message: String((err as Error)?.message ?? err) };
      reply = { ...base, success: false, error: e, timestamp: Date.now() };
    }
    if (peer.inProcess) return void peer.deliver(reply);
    const enc = encode(reply, maxBytes + ENVELOPE_BYTES);
    if (enc.ok) peer.deliver(reply, enc);
    else peer.deliver({ ...base, success: false, error: { code: enc.code, message: `host method ${msg.method}: ${enc.message}` }, timestamp: Date.now() });
  }
}
