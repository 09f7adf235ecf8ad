import { describe, expect, it } from 'vitest';
import { seccompProfile } from '../../src/seccomp/profiles.js';
import { attack, attackWithProfile } from './support.js';

/**
 * Sockets. A plugin has no network (network mode none) and LogoMesh's no-network seccomp
 * profile lets it create Unix sockets only: every other family fails with EAFNOSUPPORT, as
 * on a kernel without it. The tests marked "without the no-network profile" run the same
 * plugin under the profile a networked plugin would get, to show the next layer alone.
 */
describe('sockets other than AF_UNIX cannot be created', () => {
  it('ordinary IP sockets (TCP, UDP, IPv6, ping), connecting even to loopback; Unix sockets still work', async () => {
    const { report } = await attack('tcp-socket');
    expect(report).toEqual({
      tcp: 'EAFNOSUPPORT',
      udp: 'EAFNOSUPPORT',
      tcp6: 'EAFNOSUPPORT',
      icmpPing: 'EAFNOSUPPORT',
      connectLoopback: 'EAFNOSUPPORT',
      connectOutside: 'EAFNOSUPPORT',
      socketpairInet: 'EAFNOSUPPORT',
      unix: 'ok',
      unixDgram: 'ok',
      socketpairUnix: 'ok',
    });
  });

  it('without the no-network profile, IP sockets exist but network mode none leaves nowhere to go', async () => {
    const report = await attackWithProfile<Record<string, string>>('tcp-socket', seccompProfile('network'));
    expect(report).toMatchObject({ tcp: 'ok', udp: 'ok', connectLoopback: 'ECONNREFUSED', connectOutside: 'ENETUNREACH', unix: 'ok' });
  });

  it('raw sockets (AF_INET, AF_INET6, AF_PACKET)', async () => {
    const { report } = await attack('raw-socket');
    // Raw and packet sockets are attacks: the no-network profile kills the caller (and the kernel logs it).
    expect(report).toEqual({ inetRaw: 'SIGSYS', inetRawTcp: 'SIGSYS', inet6Raw: 'SIGSYS', packet: 'SIGSYS' });
  });

  it('without the no-network profile, raw sockets still fail with EPERM: CAP_NET_RAW is dropped', async () => {
    const report = await attackWithProfile('raw-socket', seccompProfile('network'));
    expect(report).toEqual({ inetRaw: 'EPERM', inetRawTcp: 'EPERM', inet6Raw: 'EPERM', packet: 'EPERM' });
  });

  it('netlink: routes, socket diagnostics, xfrm, audit, uevents, netfilter, generic', async () => {
    const { report } = await attack<Record<string, string>>('netlink-socket');
    expect(Object.keys(report)).toHaveLength(7);
    for (const [proto, result] of Object.entries(report)) expect(result, proto).toBe('EAFNOSUPPORT');
  });

  it('rarely used families with a record of kernel bugs: AF_ALG, AF_VSOCK, AF_XDP, AF_KEY, AF_RDS, AF_TIPC, AF_CAN, Bluetooth, AF_PACKET', async () => {
    const { report } = await attack<Record<string, string>>('socket-families');
    expect(Object.keys(report)).toHaveLength(9);
    // A packet socket, even a datagram one, is an attack (killed); the rest do not exist here.
    for (const [family, result] of Object.entries(report)) expect(result, family).toBe(family === 'packetDgram' ? 'SIGSYS' : 'EAFNOSUPPORT');
  });
});

describe('the container engine is out of reach', () => {
  it('no Docker or containerd socket, no socket file at all, no DOCKER_HOST, no containerd-shim abstract socket', async () => {
    const { report } = await attack<{ paths: Record<string, boolean> } & Record<string, unknown>>('docker-socket');
    expect(Object.values(report.paths)).toEqual(Array(6).fill(false));
    expect(report).toMatchObject({ socketFiles: [], abstractSockets: [], dockerHost: null });
  });
});
