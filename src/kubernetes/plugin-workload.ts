import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import { LABEL } from '../labels.js';
import type { LoadedManifest } from '../manifest/types.js';
import { ociRuntimeFor } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { PLUGIN_MOUNT, runtimeImage } from '../runtimes/index.js';
import { credentialMount } from './credential.js';
import { proxyEnv } from './egress-proxy.js';
import { HUB_SERVICE, kubeLabels, pluginName, PLUGIN_SERVICE_ACCOUNT, podSelector } from './names.js';
import { pluginResources, scratchVolumes } from './resources.js';
import { containerSecurityContext, podSecurityContext, seccompLocalhost } from './security.js';
import type { KubeTarget } from './target.js';
import { pluginGid, pluginUid } from '../runtimes/runtime.js';

export interface PluginWorkloadInput {
  readonly loaded: LoadedManifest;
  readonly policy: Policy;
  readonly target: KubeTarget;
  /** The plugin's image: its runtime's image with the plugin folder at /plugin, or its compiled image. */
  readonly image: string;
  /** Name of the SeccompProfile object the Pod loads (seccomp-profiles.ts). */
  readonly seccompProfile: string;
  /** Whether the plugin has an egress proxy (network capabilities). */
  readonly networked: boolean;
}

/**
 * A plugin's Deployment: one replica, replaced (never surged: the hub takes one connection per
 * plugin) when its template changes. A Deployment rather than a bare Pod: its ReplicaSet
 * reschedules the plugin when a node fails or is drained, even while the controller itself is
 * being rescheduled, and GitOps tools can update it (a Pod's spec is immutable). The
 * manifest's restart policy and health checks stay the controller's (docs/kubernetes.md).
 * Pure: the same input always gives the same object.
 */
export function pluginDeployment(input: PluginWorkloadInput): IDeployment {
  const { loaded, policy, target } = input;
  const { manifest } = loaded;
  const id = manifest.id;
  const runtime = runtimeImage(manifest.runtime);
  const identity = { uid: pluginUid(target.instance, id), gid: pluginGid(target.instance, id) };
  const selector = podSelector('plugin', target.instance, id);
  const scratch = scratchVolumes(manifest.resources);
  const writable = writableGrants(loaded);
  const credential = credentialMount(id);
  const oci = ociRuntimeFor(policy, loaded);
  const hubHost = `${HUB_SERVICE}.${target.namespace}.svc`;

  const env: Record<string, string> = {
    ...runtime.env,
    ...(input.networked ? proxyEnv(id, target, hubHost) : {}),
    ...credential.env,
    HOME: '/tmp',
    LOGOMESH_PLUGIN_ID: id,
    LOGOMESH_PLUGIN_VERSION: manifest.version,
    LOGOMESH_PLUGIN_DIR: PLUGIN_MOUNT,
    LOGOMESH_HUB_URL: `ws://${hubHost}:${target.hubPort}/v1`,
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: pluginName(id), namespace: target.namespace, labels: kubeLabels('plugin', target.instance, id), annotations: manifestAnnotations(loaded) },
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      revisionHistoryLimit: 2,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...selector }, annotations: manifestAnnotations(loaded) },
        spec: {
          serviceAccountName: PLUGIN_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          hostNetwork: false,
          hostPID: false,
          hostIPC: false,
          shareProcessNamespace: false,
          ...(oci.runtime !== undefined ? { runtimeClassName: oci.runtime } : {}),
          nodeSelector: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': target.arch },
          // The SDKs answer SIGTERM by finishing what is in flight (docs/protocol.md).
          terminationGracePeriodSeconds: 10,
          restartPolicy: 'Always',
          securityContext: podSecurityContext(identity, seccompLocalhost(input.seccompProfile)),
          containers: [
            {
              name: 'plugin',
              image: input.image,
              imagePullPolicy: 'IfNotPresent',
              // A compiled plugin's image holds its binary, not its folder: no /plugin to start in.
              ...(runtime.compile ? { command: [...runtime.compile.command] } : { command: runtime.command(manifest.entrypoint), workingDir: PLUGIN_MOUNT }),
              env: Object.entries(env).map(([name, value]) => ({ name, value })),
              resources: pluginResources(manifest.resources),
              securityContext: containerSecurityContext(identity),
              volumeMounts: [...scratch.mounts, credential.mount, ...writable.mounts],
              stdin: false,
              tty: false,
            },
          ],
          volumes: [...scratch.volumes, credential.volume, ...writable.volumes],
        },
      },
    },
  };
}

/**
 * The manifest's hash (a sha256 is longer than a label value may be) and the limits a Pod has
 * no field for, so an operator and the controller see them on every Pod.
 */
function manifestAnnotations(loaded: LoadedManifest): Record<string, string> {
  const r = loaded.manifest.resources;
  return {
    [LABEL.manifestHash]: loaded.hash,
    'io.logomesh.max-processes': String(r.maxProcesses),
    'io.logomesh.max-file-handles': String(r.maxFileHandles),
  };
}

/**
 * Write grants as emptyDirs over the granted folder: the code comes from the image, read-only,
 * and what the plugin writes stays on its node for the life of the Pod (a host folder is not
 * there to mount). Read grants need nothing: the folder is in the image. Sized like /tmp.
 */
function writableGrants(loaded: LoadedManifest): { volumes: IVolume[]; mounts: IVolumeMount[] } {
  // Never '.': the manifest loader refuses a write grant that covers the manifest itself.
  const targets = [...new Set(loaded.grantedPaths.filter((g) => g.writable).map((g) => g.relative))].sort();
  const sizeLimit = `${loaded.manifest.resources.maxTmpMB}Mi`;
  return {
    volumes: targets.map((_, i) => ({ name: `grant-${i}`, emptyDir: { sizeLimit } })),
    mounts: targets.map((rel, i) => ({ name: `grant-${i}`, mountPath: `${PLUGIN_MOUNT}/${rel}` })),
  };
}
