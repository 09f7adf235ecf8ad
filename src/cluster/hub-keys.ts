import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { CREDENTIAL_KEY, credentialSecretName } from '../kubernetes/credential.js';
import { kubeLabels } from '../kubernetes/names.js';
import { kubeStatus, type KubeApi, type KubeResource } from './api.js';

/** Bytes of a new key: what HMAC-SHA256 takes in one block. */
const KEY_BYTES = 32;

/**
 * The per-plugin hub keys (docs/kubernetes.md#the-hub-across-nodes): each in the plugin's own
 * Secret `lm-hubkey-<id>`, which only its Pod mounts. Made here, from the OS's random source,
 * the first time a plugin starts, and read back by a controller that follows this one; the
 * Role allows get, create and delete by name, never list or watch, so nothing reads every key
 * at once.
 */
export class HubKeys {
  constructor(
    private readonly api: KubeApi,
    private readonly instance: string,
    private readonly log: Logger,
  ) {}

  /** The plugin's key: read, or made now if it has none (a Secret another controller made meanwhile wins). */
  async ensure(pluginId: string): Promise<Buffer> {
    const existing = await this.read(pluginId);
    if (existing) return existing;
    const key = randomBytes(KEY_BYTES);
    try {
      await this.api.create(this.secret(pluginId, key));
      this.log.info({ plugin: pluginId }, 'made the plugin\'s hub key');
      return key;
    } catch (err) {
      if (kubeStatus((err as { cause?: unknown }).cause) !== 409) throw err;
    }
    const raced = await this.read(pluginId);
    if (!raced) throw new Error(`the Secret ${credentialSecretName(pluginId)} was created and deleted again while it was read`);
    return raced;
  }

  /** The key as its Secret holds it now (rotated, perhaps), or undefined without one. */
  async read(pluginId: string): Promise<Buffer | undefined> {
    const secret = await this.api.read<KubeResource>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: credentialSecretName(pluginId) } });
    const encoded = secret?.data?.[CREDENTIAL_KEY];
    if (!encoded) return undefined;
    const key = Buffer.from(encoded, 'base64');
    return key.length > 0 ? key : undefined;
  }

  async remove(pluginId: string): Promise<void> {
    await this.api.remove({ apiVersion: 'v1', kind: 'Secret', metadata: { name: credentialSecretName(pluginId) } });
  }

  private secret(pluginId: string, key: Buffer): KubeResource {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: credentialSecretName(pluginId), labels: kubeLabels('plugin', this.instance, pluginId) },
      type: 'Opaque',
      data: { [CREDENTIAL_KEY]: key.toString('base64') },
    } as KubeResource;
  }
}
