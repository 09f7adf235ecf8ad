import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostAddressesOn, newBridgeName, PLUGIN_BRIDGE_PREFIX, pluginNetworkOptions } from '../../src/sandbox/egress/plugin-network.js';
import { proxyLimits } from '../../src/sandbox/egress/proxy.js';

const addr = (address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo =>
  ({ address, family, netmask: '', mac: '02:42:00:00:00:01', internal: false, cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;

describe('a plugin network', () => {
  it('is a bridge named lmp<11 hex digits>, which the host firewall rules match, within the 15 characters of an interface name', () => {
    const names = new Set(Array.from({ length: 50 }, () => newBridgeName()));
    expect(names.size).toBe(50);
    for (const n of names) expect(n).toMatch(new RegExp(`^${PLUGIN_BRIDGE_PREFIX}[0-9a-f]{11}$`));
  });

  it('gives the host no address on the bridge, and no masquerading', () => {
    expect(pluginNetworkOptions('lmp0123456789a')).toEqual({
      'com.docker.network.bridge.name': 'lmp0123456789a',
      'com.docker.network.bridge.inhibit_ipv4': 'true',
      'com.docker.network.bridge.enable_ip_masquerade': 'false',
    });
  });

  it('is checked on the host: any IPv4 or routable IPv6 address on the bridge is a way to the host', () => {
    const visible = () => true;
    expect(hostAddressesOn('lmp1', {}, visible)).toEqual([]);
    expect(hostAddressesOn('lmp1', { lmp1: [addr('fe80::42:acff:fe11:1', 'IPv6')] }, visible)).toEqual([]);
    expect(hostAddressesOn('lmp1', { lmp1: [addr('172.18.0.1', 'IPv4'), addr('fe80::1', 'IPv6'), addr('fd00::1', 'IPv6')] }, visible)).toEqual(['172.18.0.1', 'fd00::1']);
    expect(hostAddressesOn('lmp1', { eth0: [addr('192.0.2.2', 'IPv4')] }, visible)).toEqual([]);
  });

  it('cannot be checked from another network namespace (a controller in a container)', () => {
    expect(hostAddressesOn('lmp1', { lmp1: [addr('172.18.0.1', 'IPv4')] }, () => false)).toBeUndefined();
  });
});

describe("a plugin's proxy budget", () => {
  it('grows with its connection limit: two threads a connection, buffers, file handles', () => {
    expect(proxyLimits(4, 25)).toEqual({ PidsLimit: 40, Memory: 49 * 1024 * 1024, nofile: 72, CpuQuota: 25_000 });
    expect(proxyLimits(4096, 100)).toMatchObject({ PidsLimit: 8224, nofile: 8256, CpuQuota: 100_000 });
  });

  it('gets at least a tenth of a core', () => {
    expect(proxyLimits(1, 1).CpuQuota).toBe(10_000);
  });
});
