import net from 'node:net';
import { Writable } from 'node:stream';
import type { Docker } from '../../engine/docker.js';
import type { Logger } from '../../log.js';

/**
 * One plugin's debugger, reachable from the host: a TCP listener on 127.0.0.1 whose every
 * connection is carried by `docker exec` of a small forwarding program into the plugin's
 * container, to the debugger on the container's own loopback (as `kubectl port-forward`
 * does). The container keeps network mode none: nothing else can reach it, and it reaches
 * nothing. The listener stays across restarts and replacements of the plugin: each
 * connection goes to the container it has then.
 */
export class DebugForwarder {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async open(opts: { docker: Docker; log: Logger; containerId: () => string | undefined; command: readonly string[]; port?: number }): Promise<DebugForwarder> {
    const server = net.createServer();
    const forwarder = await new Promise<DebugForwarder>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve(new DebugForwarder(server, (server.address() as net.AddressInfo).port)));
    });
    server.on('connection', (socket) => void forwarder.carry(socket, opts));
    return forwarder;
  }

  private async carry(socket: net.Socket, opts: { docker: Docker; log: Logger; containerId: () => string | undefined; command: readonly string[] }): Promise<void> {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const id = opts.containerId();
    if (!id) return void socket.destroy();
    try {
      const exec = await opts.docker.getContainer(id).exec({ Cmd: [...opts.command], AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false });
      const stream = await exec.start({ hijack: true, stdin: true });
      const toSocket = new Writable({ write: (chunk: Buffer, _e, done) => (socket.write(chunk) ? done() : socket.once('drain', () => done())) });
      const errors = new Writable({ write: (chunk: Buffer, _e, done) => (opts.log.debug({ err: chunk.toString().slice(0, 200) }, 'debug forwarder'), done()) });
      opts.docker.modem.demuxStream(stream, toSocket, errors);
      socket.pipe(stream);
      stream.on('end', () => socket.end());
      stream.on('error', () => socket.destroy());
      socket.on('close', () => (stream as unknown as { destroy(): void }).destroy());
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'could not reach the plugin debugger');
      socket.destroy();
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
