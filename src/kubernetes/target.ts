import { LogoMeshError } from '../errors.js';
import { checkNamespace } from './names.js';
import { NODE_ARCHES, type NodeArch } from './seccomp-profiles.js';

/**
 * The cluster a render is for: facts of the cluster that no manifest knows. Every field has
 * a default that fits a kind or kubeadm cluster (docs/kubernetes.md).
 */
export interface KubeTarget {
  readonly namespace: string;
  /** `io.logomesh.instance` and the scope of the plugins' uids: the namespace (one installation per namespace). */
  readonly instance: string;
  /** Node architecture the Pods are scheduled on, and the seccomp profiles are resolved for. */
  readonly arch: NodeArch;
  /** Image names are `<registry>/<name>`: `egress`, `controller`, `plugin-<id>`. */
  readonly registry: string;
  /**
   * The cluster's Pod network (IPv4). Each egress proxy accepts connections only from
   * addresses in it, and never connects to one (images/egress/egress_config.py `subnet`).
   */
  readonly podCidr: string;
  /** TCP port of the hub for plugins, on the hub Service. */
  readonly hubPort: number;
  /** TCP port of the hub for host clients (bearer token), on the hub Service. */
  readonly clientPort: number;
}

export interface TargetOptions {
  readonly namespace?: string;
  readonly arch?: string;
  readonly registry?: string;
  readonly podCidr?: string;
}

/** kind's and kubeadm-with-flannel's default Pod network. */
export const DEFAULT_POD_CIDR = '10.244.0.0/16';
export const DEFAULT_REGISTRY = 'logomesh';
export const HUB_PLUGIN_PORT = 7070;
export const HUB_CLIENT_PORT = 7071;

const IMAGE_PREFIX = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;

/** The target from command-line options, each checked at once with a coded error naming the option. */
export function kubeTarget(opts: TargetOptions = {}): KubeTarget {
  const namespace = checkNamespace(opts.namespace ?? 'logomesh');
  const arch = opts.arch ?? 'amd64';
  if (!Object.prototype.hasOwnProperty.call(NODE_ARCHES, arch)) {
    throw bad('--arch', `one of ${Object.keys(NODE_ARCHES).join(', ')}`, arch);
  }
  const registry = opts.registry ?? DEFAULT_REGISTRY;
  if (!IMAGE_PREFIX.test(registry)) throw bad('--registry', 'an image name prefix such as registry.example.com/logomesh (lowercase, no tag)', registry);
  const podCidr = opts.podCidr ?? DEFAULT_POD_CIDR;
  if (!isIpv4Cidr(podCidr)) throw bad('--pod-cidr', 'an IPv4 network such as 10.244.0.0/16', podCidr);
  return { namespace, instance: namespace, arch: arch as NodeArch, registry, podCidr, hubPort: HUB_PLUGIN_PORT, clientPort: HUB_CLIENT_PORT };
}

export function isIpv4Cidr(text: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  return octets.every((o) => o <= 255) && Number(m[5]) <= 32;
}

function bad(option: string, expected: string, found: string): LogoMeshError {
  return new LogoMeshError('LM_KUBE_RENDER', `${option}: expected ${expected}, found '${found}'`, { path: option, expected, found: `'${found}'` });
}
