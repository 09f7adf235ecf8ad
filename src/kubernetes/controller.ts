import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IPolicyRule } from 'kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { CONTROLLER_NAME, HUB_SERVICE, kubeLabels, PLUGIN_SERVICE_ACCOUNT } from './names.js';
import { controllerSelector } from './network-policies.js';
import { containerSecurityContext, podSecurityContext } from './security.js';
import type { KubeTarget } from './target.js';

/**
 * The controller's own objects: its ServiceAccount and the least Role it needs, its
 * Deployment (one replica: one hub), the hub's Service, the validated manifests it serves,
 * and the ServiceAccount of the plugins (no token, bound to nothing).
 */

/** Where the controller finds the validated manifests (one `<id>.json` each). */
const MANIFESTS_DIR = '/etc/logomesh/manifests';
/**
 * The controller's home: its audit trail, `state.json` (revocations and grants) and hub token.
 * On a PersistentVolumeClaim, so a rescheduled controller keeps every revocation and appends
 * to the same hash chain.
 */
const HOME = '/var/lib/logomesh';
const HOME_CLAIM = 'logomesh-controller-home';
/** Not root, not a plugin's id: the controller's own user. */
const CONTROLLER_ID = { uid: 65532, gid: 65532 };

function meta(name: string, target: KubeTarget, role: 'controller' | 'plugin' = 'controller') {
  return { name, namespace: target.namespace, labels: kubeLabels(role, target.instance) };
}

export function controllerServiceAccount(target: KubeTarget): IServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(CONTROLLER_NAME, target) };
}

/** The plugins' and proxies' account: no API token is ever mounted, and no Role is bound to it. */
export function pluginServiceAccount(target: KubeTarget): IServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(PLUGIN_SERVICE_ACCOUNT, target, 'plugin'), automountServiceAccountToken: false };
}

const WRITE = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

/**
 * What the Kubernetes backend does, and nothing more, in its own namespace only (a Role, not
 * a ClusterRole): plugin and proxy Deployments (create, adopt by label, scale to zero at the
 * restart limit, remove), their Pods (watch for exits and OOM kills; delete one to restart
 * it), their output (pods/log: `logomesh logs` and the proxies' decisions for the audit
 * trail), the proxies' allow-lists and Services, the plugins' NetworkPolicies, and the
 * per-plugin hub Secrets (created, read when a plugin connects, deleted with the plugin:
 * never listed or watched). Not: exec, attach, port-forward, other namespaces, RBAC itself,
 * nodes, or the cluster-wide SeccompProfiles and RuntimeClass, which only an operator applies.
 */
export const CONTROLLER_RULES: readonly IPolicyRule[] = [
  { apiGroups: ['apps'], resources: ['deployments'], verbs: WRITE },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'delete'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: [''], resources: ['configmaps', 'services'], verbs: WRITE },
  { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: WRITE },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'delete'] },
];

export function controllerRole(target: KubeTarget): IRole {
  return { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta(CONTROLLER_NAME, target), rules: CONTROLLER_RULES.map((r) => ({ ...r })) };
}

export function controllerRoleBinding(target: KubeTarget): IRoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(CONTROLLER_NAME, target),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_NAME },
    subjects: [{ kind: 'ServiceAccount', name: CONTROLLER_NAME, namespace: target.namespace }],
  };
}

/** What the API server stores of one ConfigMap at most (1 MiB), less room for its metadata. */
export const MAX_CONFIGMAP_DATA = 1024 * 1024 - 16 * 1024;

/** The key of a plugin's own objects in the manifests ConfigMap, beside its `<id>.json`. */
export const OBJECTS_SUFFIX = '.objects.json';

/**
 * The validated manifests, defaults filled in, as the controller serves them (ACL, limits,
 * restart policies), and each plugin's own objects as rendered (`<id>.objects.json`: what the
 * controller in the cluster applies at each start, having no plugin folder to render them
 * from). A manifest may be up to 256 KiB, so a few large ones could pass what one ConfigMap
 * holds and make the whole apply fail: LM_KUBE_RENDER names the largest instead.
 */
export function manifestsConfigMap(loaded: readonly LoadedManifest[], target: KubeTarget, objects: Readonly<Record<string, readonly object[]>> = {}): IConfigMap {
  const sorted = [...loaded].sort((a, b) => a.manifest.id.localeCompare(b.manifest.id));
  const entries = sorted.flatMap((l) => {
    const own = objects[l.manifest.id];
    return [[`${l.manifest.id}.json`, `${JSON.stringify(l.manifest)}\n`] as const, ...(own ? [[`${l.manifest.id}${OBJECTS_SUFFIX}`, `${JSON.stringify(own)}\n`] as const] : [])];
  });
  const total = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (total > MAX_CONFIGMAP_DATA) {
    const [largest] = [...entries].sort((a, b) => Buffer.byteLength(b[1]) - Buffer.byteLength(a[1]));
    throw new LogoMeshError('LM_KUBE_RENDER', `the validated manifests take ${total} bytes, more than one ConfigMap holds (${MAX_CONFIGMAP_DATA}); the largest is ${largest![0]} (${Buffer.byteLength(largest![1])} bytes)`, {
      expected: `at most ${MAX_CONFIGMAP_DATA} bytes of manifests in all`,
      found: `${total} bytes`,
    });
  }
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('logomesh-manifests', target), data: Object.fromEntries(entries) };
}

/** The volume of the controller's home: the cluster's default StorageClass, one node at a time. */
export function controllerHomeClaim(target: KubeTarget): IPersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: meta(HOME_CLAIM, target),
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}

/**
 * Seconds before the controller leaves a node that stopped answering: the default is 300, five
 * minutes without a hub; with 30 the plugins' SDKs, which reconnect for 60 s, usually find
 * the new one (docs/kubernetes.md#when-the-controller-is-rescheduled).
 */
const NODE_LOST_SECONDS = 30;

export function controllerDeployment(target: KubeTarget): IDeployment {
  const selector = controllerSelector(target);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(CONTROLLER_NAME, target),
    spec: {
      replicas: 1,
      // Never two hubs at once: the old Pod is gone before the new one starts.
      strategy: { type: 'Recreate' },
      revisionHistoryLimit: 2,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...selector } },
        spec: {
          serviceAccountName: CONTROLLER_NAME,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          tolerations: ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'].map((key) => ({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: NODE_LOST_SECONDS })),
          securityContext: podSecurityContext(CONTROLLER_ID, { type: 'RuntimeDefault' }),
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'controller',
              image: `${target.registry}/controller:latest`,
              imagePullPolicy: 'IfNotPresent',
              args: ['up', MANIFESTS_DIR, '--backend', 'kubernetes'],
              env: [
                { name: 'LOGOMESH_HOME', value: HOME },
                { name: 'LOGOMESH_INSTANCE', value: target.instance },
                { name: 'LOGOMESH_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'LOGOMESH_HUB_BIND', value: '0.0.0.0' },
                { name: 'LOGOMESH_HUB_PORT', value: String(target.clientPort) },
                { name: 'LOGOMESH_HUB_PLUGIN_PORT', value: String(target.hubPort) },
                { name: 'LOGOMESH_LOG_FORMAT', value: 'json' },
              ],
              ports: [
                { name: 'plugins', containerPort: target.hubPort, protocol: 'TCP' },
                { name: 'clients', containerPort: target.clientPort, protocol: 'TCP' },
              ],
              resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
              securityContext: containerSecurityContext(CONTROLLER_ID),
              volumeMounts: [
                { name: 'home', mountPath: HOME },
                { name: 'manifests', mountPath: MANIFESTS_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'home', persistentVolumeClaim: { claimName: HOME_CLAIM } },
            { name: 'manifests', configMap: { name: 'logomesh-manifests', defaultMode: 0o444 } },
          ],
        },
      },
    },
  };
}

export function hubService(target: KubeTarget): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(HUB_SERVICE, target),
    spec: {
      type: 'ClusterIP',
      selector: controllerSelector(target),
      ports: [
        { name: 'plugins', port: target.hubPort, targetPort: 'plugins', protocol: 'TCP' },
        { name: 'clients', port: target.clientPort, targetPort: 'clients', protocol: 'TCP' },
      ],
    },
  };
}
