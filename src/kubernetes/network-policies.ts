import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { IIPBlock } from 'kubernetes-models/networking.k8s.io/v1/IPBlock';
import { LABEL, OWNER } from '../labels.js';
import { EGRESS_PORT } from '../sandbox/egress.js';
import { CONTROLLER_NAME, kubeLabels, pluginName, podSelector, proxyName } from './names.js';
import type { KubeTarget } from './target.js';

/**
 * The network fences. NetworkPolicies only ever add what they allow, so the deny is one
 * policy selecting every LogoMesh plugin and proxy Pod of the installation with no rule at
 * all; each plugin's own policy then allows exactly its hub, its proxy and DNS. A plugin
 * whose own policy is missing (a partial apply) is cut off, never open.
 */

/** IPv4 addresses no egress proxy connects to: private, shared (CGNAT), loopback, link-local (cloud metadata), reserved, multicast. */
const NOT_PUBLIC = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/** Every public IPv4 address: all of them except NOT_PUBLIC and the cluster's own Pod network. */
export function publicIpv4(podCidr: string): IIPBlock {
  return { cidr: '0.0.0.0/0', except: [...new Set([...NOT_PUBLIC, podCidr])] };
}

/**
 * DNS through the cluster's DNS service (CoreDNS, labelled k8s-app=kube-dns in kube-system by
 * kubeadm, kind, k3s and the managed services): a Pod reaches its hub and proxy by name.
 */
export function dnsEgress(): INetworkPolicyEgressRule {
  return {
    to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  };
}

/** No ingress and no egress for any plugin or proxy Pod of the installation, unless a policy below allows it. */
export function denyAllPolicy(target: KubeTarget): INetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'logomesh-deny-all', namespace: target.namespace, labels: kubeLabels('plugin', target.instance) },
    spec: {
      podSelector: {
        matchLabels: { [LABEL.owner]: OWNER, [LABEL.instance]: target.instance },
        matchExpressions: [{ key: LABEL.role, operator: 'In', values: ['plugin', 'egress'] }],
      },
      policyTypes: ['Ingress', 'Egress'],
    },
  };
}

/** A plugin's allowances: out to the hub's plugin port, to its own proxy (if it has one), and DNS. Nothing in. */
export function pluginNetworkPolicy(pluginId: string, networked: boolean, target: KubeTarget): INetworkPolicy {
  const egress: INetworkPolicyEgressRule[] = [
    { to: [{ podSelector: { matchLabels: controllerSelector(target) } }], ports: [{ protocol: 'TCP', port: target.hubPort }] },
    dnsEgress(),
  ];
  if (networked) egress.push({ to: [{ podSelector: { matchLabels: podSelector('egress', target.instance, pluginId) } }], ports: [{ protocol: 'TCP', port: EGRESS_PORT }] });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: pluginName(pluginId), namespace: target.namespace, labels: kubeLabels('plugin', target.instance, pluginId), annotations: networked ? { 'io.logomesh.egress-proxy': proxyName(pluginId) } : {} },
    spec: {
      podSelector: { matchLabels: podSelector('plugin', target.instance, pluginId) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress,
    },
  };
}

/**
 * The controller's ingress: the plugins' hub port from this installation's plugin Pods only;
 * the host clients' port (bearer token) from anywhere, as an operator exposes it. Its egress
 * (the API server, whose address a policy cannot name portably) is left open.
 */
export function controllerNetworkPolicy(target: KubeTarget): INetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: CONTROLLER_NAME, namespace: target.namespace, labels: kubeLabels('controller', target.instance) },
    spec: {
      podSelector: { matchLabels: controllerSelector(target) },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { [LABEL.owner]: OWNER, [LABEL.instance]: target.instance, [LABEL.role]: 'plugin' } } }],
          ports: [{ protocol: 'TCP', port: target.hubPort }],
        },
        { ports: [{ protocol: 'TCP', port: target.clientPort }] },
      ],
    },
  };
}

export function controllerSelector(target: KubeTarget): Record<string, string> {
  return kubeLabels('controller', target.instance);
}
