import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { Manifest } from '../manifest/types.js';
import { EGRESS_PORT, networkHosts } from '../sandbox/egress.js';
import { proxyLimits } from '../sandbox/egress/proxy.js';
import { kubeLabels, PLUGIN_SERVICE_ACCOUNT, podSelector, proxyName } from './names.js';
import { cpuQuantity } from './resources.js';
import { containerSecurityContext, podSecurityContext, seccompLocalhost } from './security.js';
import type { KubeTarget } from './target.js';
import { dnsEgress, publicIpv4 } from './network-policies.js';

/**
 * A networked plugin's egress proxy (images/egress), as on Docker one per plugin: a
 * Deployment running the same image, its allow-list in a ConfigMap (the file the proxy
 * reads), a Service the plugin reaches it through, and a NetworkPolicy that lets the proxy
 * take connections from its plugin only and make them to public addresses on the allowed
 * ports only. Pure functions.
 */

const CONFIG_DIR = '/etc/logomesh-egress';
/**
 * The proxy also answers DNS (NXDOMAIN to everything) on Docker, where it is its plugin's only
 * DNS server. A Pod's DNS server must be an IP address known when the Pod is created, which a
 * render cannot know; the port is moved above 1024 so the proxy needs no sysctl, and nothing
 * is routed to it (docs/kubernetes.md#dns).
 */
const UNUSED_DNS_PORT = 5353;
/** The proxy runs as nobody, as in its image. */
const NOBODY = { uid: 65534, gid: 65534 };

/** The proxy variables of the plugin: every HTTP client library honours them. The hub is reached directly. */
export function proxyEnv(pluginId: string, target: KubeTarget, hubHost: string): Record<string, string> {
  const url = `http://${proxyName(pluginId)}.${target.namespace}.svc:${EGRESS_PORT}`;
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: hubHost, no_proxy: hubHost };
}

/** The allow-list, in the proxy's own config format (images/egress/egress_config.py). */
export function proxyConfigMap(manifest: Manifest, target: KubeTarget): IConfigMap {
  const config = {
    generation: 0,
    plugin: manifest.id,
    subnet: target.podCidr,
    hosts: networkHosts(manifest),
    maxConnections: manifest.resources.maxNetworkConnections,
    detached: false,
  };
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: proxyName(manifest.id), namespace: target.namespace, labels: kubeLabels('egress', target.instance, manifest.id) },
    data: { 'config.json': `${JSON.stringify(config, null, 2)}\n` },
  };
}

export function proxyDeployment(manifest: Manifest, target: KubeTarget, seccompProfile: string): IDeployment {
  const selector = podSelector('egress', target.instance, manifest.id);
  const limits = proxyLimits(manifest.resources.maxNetworkConnections, manifest.resources.maxCpuPercent);
  const quantities = { cpu: cpuQuantity((limits.CpuQuota / 100_000) * 100), memory: `${Math.ceil(limits.Memory / (1024 * 1024))}Mi` };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: proxyName(manifest.id), namespace: target.namespace, labels: kubeLabels('egress', target.instance, manifest.id) },
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      revisionHistoryLimit: 2,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...selector }, annotations: { 'io.logomesh.max-processes': String(limits.PidsLimit), 'io.logomesh.max-file-handles': String(limits.nofile) } },
        spec: {
          serviceAccountName: PLUGIN_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          hostNetwork: false,
          hostPID: false,
          hostIPC: false,
          nodeSelector: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': target.arch },
          securityContext: podSecurityContext(NOBODY, seccompLocalhost(seccompProfile)),
          containers: [
            {
              name: 'proxy',
              image: `${target.registry}/egress:latest`,
              imagePullPolicy: 'IfNotPresent',
              env: [
                { name: 'LOGOMESH_EGRESS_CONFIG', value: `${CONFIG_DIR}/config.json` },
                { name: 'LOGOMESH_EGRESS_PORT', value: String(EGRESS_PORT) },
                { name: 'LOGOMESH_EGRESS_DNS_PORT', value: String(UNUSED_DNS_PORT) },
              ],
              ports: [{ name: 'proxy', containerPort: EGRESS_PORT, protocol: 'TCP' }],
              resources: { limits: { ...quantities }, requests: { ...quantities } },
              securityContext: containerSecurityContext(NOBODY),
              // The whole folder, not a subPath: the kubelet then updates the file when the
              // ConfigMap changes, and the proxy reads it again on every new connection.
              volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: proxyName(manifest.id), defaultMode: 0o444 } }],
        },
      },
    },
  };
}

export function proxyService(manifest: Manifest, target: KubeTarget): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: proxyName(manifest.id), namespace: target.namespace, labels: kubeLabels('egress', target.instance, manifest.id) },
    spec: {
      type: 'ClusterIP',
      selector: podSelector('egress', target.instance, manifest.id),
      ports: [{ name: 'proxy', port: EGRESS_PORT, targetPort: EGRESS_PORT, protocol: 'TCP' }],
    },
  };
}

/**
 * The proxy's own fence: connections in from its plugin only, to the proxy port; out, DNS to
 * the cluster's DNS, and public IPv4 addresses on the ports the allow-list names only. The
 * proxy itself still checks every name and refuses private, loopback and link-local
 * addresses and the Pod network (`subnet`); this is the layer under it.
 */
export function proxyNetworkPolicy(manifest: Manifest, target: KubeTarget): INetworkPolicy {
  const ports = [...new Set(networkHosts(manifest).map((h) => Number(h.slice(h.lastIndexOf(':') + 1))))].sort((a, b) => a - b);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: proxyName(manifest.id), namespace: target.namespace, labels: kubeLabels('egress', target.instance, manifest.id) },
    spec: {
      podSelector: { matchLabels: podSelector('egress', target.instance, manifest.id) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: podSelector('plugin', target.instance, manifest.id) } }], ports: [{ protocol: 'TCP', port: EGRESS_PORT }] }],
      egress: [dnsEgress(), { to: [{ ipBlock: publicIpv4(target.podCidr) }], ports: ports.map((port) => ({ protocol: 'TCP', port })) }],
    },
  };
}
