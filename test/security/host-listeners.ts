import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

/** What reached one of the test's listeners: the protocol and the sender's address. */
export interface Arrival {
  readonly proto: 'tcp' | 'udp';
  readonly to: string;
  readonly from: string;
}

/**
 * TCP and UDP listeners the test binds on the host, each on one address of a network the test
 * created (a bridge's gateway address), never on a public or wildcard address. Everything
 * that reaches them is recorded.
 */
export class HostListeners {
  readonly arrivals: Arrival[] = [];
  private readonly tcp: Server[] = [];
  private readonly udp: UdpSocket[] = [];

  constructor(readonly port: number) {}

  /** Listen on `address`, TCP and UDP; rejects (EADDRNOTAVAIL) if the host holds no such address. */
  async listen(address: string): Promise<void> {
    const server = createServer((s) => {
      this.arrivals.push({ proto: 'tcp', to: address, from: s.remoteAddress ?? '?' });
      s.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, address, () => resolve());
    });
    this.tcp.push(server);
    const udp = createSocket('udp4');
    udp.on('message', (_msg, rinfo) => this.arrivals.push({ proto: 'udp', to: address, from: rinfo.address }));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.port, address, () => resolve());
    });
    this.udp.push(udp);
  }

  from(address: string): Arrival[] {
    return this.arrivals.filter((a) => a.from === address);
  }

  async close(): Promise<void> {
    for (const s of this.tcp.splice(0)) await new Promise<void>((r) => s.close(() => r()));
    for (const u of this.udp.splice(0)) await new Promise<void>((r) => u.close(() => r()));
  }
}
