import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import { hubKeyName } from './names.js';

/**
 * A plugin's credential for the hub across nodes (docs/kubernetes.md#the-hub-across-nodes):
 * a Secret of its own, `lm-hubkey-<id>`, holding 32 random bytes under `key`, which the
 * controller creates (never the render: a secret does not belong in a Git repository) and
 * the hub checks. Only this plugin's Pod mounts it; the SDK proves it holds the key without
 * sending it.
 */

/** The Secret's key holding the credential. */
export const CREDENTIAL_KEY = 'key';
/** Where the Secret is mounted; the file is `<dir>/key`. */
export const CREDENTIAL_DIR = '/run/logomesh/credential';
/** Read by the file's group only (the plugin's fsGroup): 0440. */
const CREDENTIAL_MODE = 0o440;

export function credentialSecretName(pluginId: string): string {
  return hubKeyName(pluginId);
}

/** The volume and mount of a plugin's credential, and the environment that names its file. */
export function credentialMount(pluginId: string): { volume: IVolume; mount: IVolumeMount; env: Record<string, string> } {
  return {
    volume: {
      name: 'hub-credential',
      // Not optional: a Pod whose Secret is missing waits in ContainerCreating until the
      // controller has created it, instead of starting without a way to prove who it is.
      secret: { secretName: credentialSecretName(pluginId), items: [{ key: CREDENTIAL_KEY, path: CREDENTIAL_KEY }], defaultMode: CREDENTIAL_MODE, optional: false },
    },
    mount: { name: 'hub-credential', mountPath: CREDENTIAL_DIR, readOnly: true },
    env: { LOGOMESH_HUB_CREDENTIAL: `${CREDENTIAL_DIR}/${CREDENTIAL_KEY}` },
  };
}
