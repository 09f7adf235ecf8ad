import type { ContainerCreateOptions } from 'dockerode';
import type { Docker } from '../../engine/docker.js';
import { LogoMeshError } from '../../errors.js';
import { ensureImage, ensurePluginImage } from '../../images/build.js';
import { runtimeImage } from '../../runtimes/index.js';
import type { Logger } from '../../log.js';
import { pluginSeccompProfile, seccompSecurityOpt } from '../../seccomp/profiles.js';
import { mutablePaths } from '../../signing/signature.js';
import type { Managed } from '../managed.js';
import { DebugForwarder } from './forwarder.js';
import { DEBUG_RECIPES } from './recipes.js';

/**
 * Room for the debugger in the plugin's memory limit: it runs in the plugin's container, so
 * its memory is charged to the plugin's cgroup. delve loading a Go binary's debug information
 * alone can pass a small plugin's limit (32 MB in the scaffold) and be OOM-killed.
 */
export const DEBUGGER_MEMORY_BYTES = 256 * 1024 * 1024;

/** Where a plugin's debugger is reached from the host. */
export interface DebugEndpoint {
  readonly port: number;
  readonly protocol: 'inspector' | 'dap' | 'delve' | 'gdb';
}

/**
 * Debug mode (`logomesh dev --debug`; `up` refuses it): every plugin starts under its
 * runtime's debugger, and the controller forwards a port on the host's 127.0.0.1 to each
 * (forwarder.ts). The sandbox is the same but for what a debugger needs: the debugger's
 * image and command, and the seccomp profile of a plugin with network, so that the
 * debugger may listen on the loopback of a container that still has no network at all.
 */
export class DebugMode {
  private readonly forwarders = new Map<string, Promise<DebugForwarder>>();

  constructor(
    private readonly docker: Docker,
    private readonly log: Logger,
    private readonly containerOf: (id: string) => string | undefined,
  ) {}

  /** Turn a plugin's container spec into its debug one. Throws LM_RUNTIME_UNAVAILABLE for a runtime without a debugger here. */
  async adjust(m: Managed, spec: ContainerCreateOptions): Promise<void> {
    const { manifest } = m.loaded;
    const recipe = DEBUG_RECIPES[manifest.runtime];
    if (!recipe) {
      throw new LogoMeshError('LM_RUNTIME_UNAVAILABLE', `logomesh dev --debug has no debugger for ${manifest.runtime} plugins yet (plugin ${manifest.id}); debuggers: ${Object.keys(DEBUG_RECIPES).join(', ')}`, { plugin: manifest.id, found: manifest.runtime });
    }
    if (recipe.image) spec.Image = (await ensureImage(this.docker, recipe.image, { log: this.log })).tag;
    if (recipe.compile) {
      const runtime = runtimeImage(manifest.runtime);
      // From the same files as the plugin's own image: its signed files exactly (LM_SIGNATURE
      // otherwise), its mutable paths left out.
      const opts = { log: this.log, variant: 'debug' as const, exclude: mutablePaths(m.loaded), ...(m.signed ? { signedFiles: m.signed.files } : {}) };
      spec.Image = (await ensurePluginImage(this.docker, { ...runtime, compile: { dockerfile: recipe.compile, command: [] } }, m.loaded, opts)).tag;
    }
    spec.Cmd = recipe.command(manifest, spec.Cmd as string[]);
    const profile = pluginSeccompProfile(true, [...manifest.security.syscalls, ...recipe.syscalls]);
    spec.HostConfig!.SecurityOpt = (spec.HostConfig!.SecurityOpt ?? []).map((o: string) => (o.startsWith('seccomp=') ? seccompSecurityOpt(profile) : o));
    spec.Labels = { ...spec.Labels, 'io.logomesh.debug': recipe.protocol };
    const hc = spec.HostConfig!;
    if (hc.Memory) hc.Memory += DEBUGGER_MEMORY_BYTES;
    if (hc.MemorySwap && hc.MemorySwap > 0) hc.MemorySwap += DEBUGGER_MEMORY_BYTES;
  }

  /** The plugin's debugger on the host (opened once per plugin, kept across its restarts). */
  async expose(m: Managed): Promise<DebugEndpoint> {
    const { id, runtime } = m.loaded.manifest;
    const recipe = DEBUG_RECIPES[runtime]!;
    let f = this.forwarders.get(id);
    if (!f) {
      f = DebugForwarder.open({ docker: this.docker, log: this.log.child({ plugin: id }), containerId: () => this.containerOf(id), command: recipe.forwarder(recipe.port) });
      this.forwarders.set(id, f);
    }
    return { port: (await f).port, protocol: recipe.protocol };
  }

  async close(id?: string): Promise<void> {
    for (const [key, f] of this.forwarders) {
      if (id !== undefined && key !== id) continue;
      this.forwarders.delete(key);
      await f.then((x) => x.close(), () => undefined);
    }
  }
}
