import { timingSafeEqual } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import type { WebSocket, WebSocketServer } from 'ws';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { PluginAuthResult } from './plugin-auth.js';
import { HARD_LIMIT_FACTOR } from './protocol.js';

/** A connection attempt the hub turned away, for the audit trail. */
export interface Refusal {
  readonly who: string;
  readonly origin: string;
  readonly code: ErrorCode;
  readonly reason: string;
}

export interface TransportOptions {
  readonly log: Logger;
  readonly token: string;
  readonly maxMessageBytes: number;
  /** Host clients connected at once (default 64); one more is refused with 503. */
  readonly maxHostClients: number;
  /** uid:gid that may connect to plugin sockets; each socket is chowned to it. */
  readonly socketOwner?: { uid: number; gid: number } | undefined;
  readonly onRefused: (r: Refusal) => void;
}

/**
 * Where connections come from: the token-protected TCP endpoint for host clients, one
 * Unix socket per plugin, whose path alone says which plugin is speaking, and the TCP port
 * of plugins across nodes, each proving who it is with its own key. It upgrades to
 * WebSocket and hands the socket on; it knows nothing of messages.
 */
export class Transport {
  private readonly wss: WebSocketServer;
  private tcp: Server | undefined;
  private pluginTcp: Server | undefined;
  private hostClients = 0;

  constructor(private readonly opts: TransportOptions) {
    // ws reads up to the hard limit so an oversize message can be answered, not just cut off.
    // ws is loaded with the first hub, not with this module (see engine/docker.ts).
    const { WebSocketServer: Server } = createRequire(import.meta.url)('ws') as typeof import('ws');
    this.wss = new Server({ noServer: true, maxPayload: opts.maxMessageBytes * HARD_LIMIT_FACTOR, perMessageDeflate: false, clientTracking: false });
  }

  /** Listen for host clients on TCP; returns the port. */
  async listenHost(port: number, host: string, accept: (ws: WebSocket, origin: string) => void): Promise<number> {
    const server = createServer((_req, res) => res.writeHead(426).end('WebSocket only\n'));
    server.on('upgrade', (req, socket: Duplex, head) => {
      const origin = `tcp:${req.socket.remoteAddress ?? '?'}`;
      if (!this.authorized(req)) return this.refuse(socket, 401, { who: 'host', origin, code: 'LM_UNAUTHORIZED', reason: 'missing or wrong bearer token' });
      if (!isV1(req)) return this.refuse(socket, 404, { who: 'host', origin, code: 'LM_PROTOCOL', reason: `connect to /v1, not ${truncate(req.url ?? '')}` });
      if (this.hostClients >= this.opts.maxHostClients) {
        return this.refuse(socket, 503, { who: 'host', origin, code: 'LM_HUB_LIMIT', reason: `${this.hostClients} host clients are connected, the most the hub takes` });
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        // Counted once upgraded: a handshake ws aborts never calls back, and must not hold a place.
        this.hostClients++;
        ws.once('close', () => this.hostClients--);
        accept(ws, origin);
      });
    });
    await listen(server, (cb) => server.listen(port, host, cb));
    this.tcp = server;
    return (server.address() as AddressInfo).port;
  }

  /**
   * Listen for plugins that reach the hub over TCP (across nodes), each proving who it is
   * with its own key (`authenticate`, plugin-auth.ts) before the upgrade; returns the port.
   * A refusal is HTTP 401 (or 429 for an address that failed too often) with a JSON body
   * `{code, message}` the SDKs print, and is audited.
   */
  async listenPlugins(port: number, host: string, authenticate: (req: IncomingMessage, address: string) => Promise<PluginAuthResult>, accept: (ws: WebSocket, pluginId: string, origin: string) => void): Promise<number> {
    const server = createServer((_req, res) => res.writeHead(426).end('WebSocket only\n'));
    server.on('upgrade', (req, socket: Duplex, head) => {
      const address = req.socket.remoteAddress ?? '?';
      const origin = `tcp:${address}`;
      // A client that goes away while its handshake is checked must not crash the hub.
      socket.on('error', () => socket.destroy());
      if (!isV1(req)) return this.refuseJson(socket, 404, { who: 'unknown', origin, code: 'LM_PROTOCOL', reason: `connect to /v1, not ${truncate(req.url ?? '')}` });
      authenticate(req, address).then(
        (result) => {
          if (!result.ok) {
            const status = result.code === 'LM_RATE_LIMITED' ? 429 : 401;
            const who = 'plugin' in result && result.plugin !== undefined ? result.plugin : 'unknown';
            return this.refuseJson(socket, status, { who, origin, code: result.code, reason: `plugin handshake refused: ${result.reason}` });
          }
          if (socket.destroyed) return;
          this.wss.handleUpgrade(req, socket, head, (ws) => accept(ws, result.plugin, origin));
        },
        (err: unknown) => this.refuseJson(socket, 401, { who: 'unknown', origin, code: 'LM_UNAUTHORIZED', reason: `plugin handshake failed: ${String((err as Error)?.message ?? err).slice(0, 200)}` }),
      );
    });
    await listen(server, (cb) => server.listen(port, host, cb));
    this.pluginTcp = server;
    return (server.address() as AddressInfo).port;
  }

  /** Open the socket one plugin connects to. */
  async listenPlugin(pluginId: string, socketPath: string, accept: (ws: WebSocket) => void): Promise<Server> {
    mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    // A socket folder must be searchable by the plugin's uid (mkdtemp-style 0700 is not).
    chmodSync(path.dirname(socketPath), 0o755);
    rmSync(socketPath, { force: true });
    const server = createServer((_req, res) => res.writeHead(426).end('WebSocket only\n'));
    server.on('upgrade', (req, socket: Duplex, head) => {
      if (!isV1(req)) return this.refuse(socket, 404, { who: pluginId, origin: 'unix', code: 'LM_PROTOCOL', reason: `connect to /v1, not ${truncate(req.url ?? '')}` });
      this.wss.handleUpgrade(req, socket, head, accept);
    });
    await listen(server, (cb) => server.listen(socketPath, cb));
    this.restrictSocket(socketPath);
    return server;
  }

  async close(): Promise<void> {
    for (const server of [this.tcp, this.pluginTcp]) if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.wss.close();
  }

  /** Only the plugin's user (and root) may connect; anyone else on the host may not. */
  private restrictSocket(socketPath: string): void {
    const owner = this.opts.socketOwner;
    try {
      if (owner) chownSync(socketPath, owner.uid, owner.gid);
      chmodSync(socketPath, 0o600);
    } catch {
      // Not root: the plugin's uid cannot be given the socket, so it must be world-writable.
      chmodSync(socketPath, 0o666);
      this.opts.log.warn({ socketPath }, 'cannot chown the plugin socket (controller not root); it is world-writable on this host');
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const want = Buffer.from(this.opts.token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private refuseJson(socket: Duplex, status: 401 | 404 | 429, r: Refusal): void {
    this.opts.onRefused(r);
    if (!socket.destroyed) socket.end(jsonRefusal(status, r));
  }

  private refuse(socket: Duplex, status: 401 | 404 | 503, r: Refusal): void {
    this.opts.onRefused(r);
    const text = `${r.code}: ${r.reason}\n`;
    const reason = { 401: 'Unauthorized', 404: 'Not Found', 503: 'Service Unavailable' }[status];
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  }
}

/** A refusal on the plugin port: the SDKs print the body's code. */
function jsonRefusal(status: 401 | 404 | 429, r: Refusal): string {
  const body = JSON.stringify({ code: r.code, message: r.reason });
  const reason = { 401: 'Unauthorized', 404: 'Not Found', 429: 'Too Many Requests' }[status];
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function isV1(req: IncomingMessage): boolean {
  return (req.url ?? '/').split('?')[0] === '/v1';
}

function truncate(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function listen(server: Server, start: (cb: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    start(() => {
      server.off('error', reject);
      resolve();
    });
  });
}
