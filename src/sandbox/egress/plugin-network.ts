import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { ignoreGone } from '../../engine/cleanup.js';
import { errorText, type Docker } from '../../engine/docker.js';
import { LogoMeshError } from '../../errors.js';
import { LABEL, ownerLabels } from '../../labels.js';
import type { Logger } from '../../log.js';

/**
 * Every plugin network's bridge on the host is named `lmp` and 11 hex digits, so that one
 * host firewall rule (`-i lmp+`, src/provision/egress-firewall.rules) covers them all, whoever
 * created them and whenever.
 */
export const PLUGIN_BRIDGE_PREFIX = 'lmp';

/** A plugin's own network: internal, and the host holds no address on it. */
export interface PluginNetwork {
  readonly id: string;
  readonly name: string;
  /** The bridge's interface name on the host. */
  readonly bridge: string;
  readonly subnet: string;
}

/**
 * The engine options of a plugin network. `inhibit_ipv4`: the bridge on the host gets no
 * address, so the plugin's default route points at an address nobody holds and nothing of
 * the host is on its link; the engine keeps the option with the network and applies it again
 * when it restarts. No masquerading, no IPv6 (the container's IPv6 is then disabled too).
 */
export function pluginNetworkOptions(bridge: string): Record<string, string> {
  return {
    'com.docker.network.bridge.name': bridge,
    'com.docker.network.bridge.inhibit_ipv4': 'true',
    'com.docker.network.bridge.enable_ip_masquerade': 'false',
  };
}

export function newBridgeName(): string {
  return `${PLUGIN_BRIDGE_PREFIX}${randomBytes(6).toString('hex').slice(0, 11)}`;
}

/**
 * The addresses the host holds on `bridge` that a plugin could reach: IPv4, and IPv6 other
 * than link-local. `undefined` when this process cannot see the bridge (it runs in another
 * network namespace, as a controller in a container does): the engine's option then stands alone.
 */
export function hostAddressesOn(
  bridge: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
  visible: (bridge: string) => boolean = (b) => existsSync(`/sys/class/net/${b}`),
): string[] | undefined {
  if (!visible(bridge)) return undefined;
  return (interfaces[bridge] ?? []).filter((a) => a.family === 'IPv4' || !a.address.toLowerCase().startsWith('fe80:')).map((a) => a.address);
}

/**
 * Create the plugin's network and check that the host holds no address on it. An engine
 * that ignored the option (not Docker's bridge driver) gets LM_EGRESS_ISOLATION, and the
 * network is removed: the plugin would reach the host through it.
 */
export async function createPluginNetwork(docker: Docker, opts: { instance: string; key: string; plugin: string; log: Logger }): Promise<PluginNetwork> {
  const name = `lm-${opts.instance}-net-${opts.key}`;
  await ignoreGone(docker.getNetwork(name).remove());
  const bridge = newBridgeName();
  const network = await docker.createNetwork({
    Name: name,
    Driver: 'bridge',
    Internal: true,
    EnableIPv6: false,
    CheckDuplicate: true,
    Options: pluginNetworkOptions(bridge),
    Labels: { ...ownerLabels('egress', opts.instance), [LABEL.plugin]: opts.plugin },
  });
  try {
    const info = (await network.inspect()) as { IPAM?: { Config?: { Subnet?: string }[] } };
    const subnet = info.IPAM?.Config?.[0]?.Subnet;
    if (!subnet) throw new Error(`the engine gave ${name} no subnet`);
    const held = hostAddressesOn(bridge);
    if (held === undefined) opts.log.debug({ bridge }, 'the plugin network bridge is not visible from here: relying on the engine to give the host no address on it');
    if (held?.length) {
      throw new LogoMeshError(
        'LM_EGRESS_ISOLATION',
        `the engine gave the host the address ${held.join(', ')} on plugin ${opts.plugin}'s network (bridge ${bridge}), although it was created with com.docker.network.bridge.inhibit_ipv4: the plugin could reach the host through it, so it is not started`,
        { plugin: opts.plugin, expected: `no host address on ${bridge}`, found: held.join(', ') },
      );
    }
    return { id: network.id, name, bridge, subnet };
  } catch (err) {
    await ignoreGone(network.remove()).catch(() => undefined);
    if (err instanceof LogoMeshError) throw err;
    throw new LogoMeshError('LM_EGRESS', `could not give plugin ${opts.plugin} its network: ${errorText(err)}`, { plugin: opts.plugin }, { cause: err });
  }
}
