import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Docker } from '../engine/docker.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import { pluginGid, pluginUid, runtimeImage } from '../runtimes/index.js';
import { checkWritableGrants } from './writable-grants.js';
import { enforcePolicy, ociRuntimeFor } from '../policy/decisions.js';
import { NO_POLICY, type Policy } from '../policy/policy.js';
import { containerSpec } from './container-spec.js';
import { resolveRuntime } from './oci-runtime.js';
import { pluginSeccompProfile } from './seccomp.js';
import { Egress, isNetworked, type EgressAttachment } from './egress.js';
import { PluginContainer } from './plugin-container.js';
import { preparePluginImage, type PrepareOptions } from '../images/plugin-image.js';
import { MountStaging } from './mount-staging.js';
import { stagePluginMounts, verifyPluginMounts } from './plugin-mounts.js';
import type { SignedContent } from '../signing/signature.js';

export interface RunOptions {
  readonly docker: Docker;
  readonly loaded: LoadedManifest;
  readonly instance: string;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly log: Logger;
  /** Aborting stops the plugin and removes its container. */
  readonly signal?: AbortSignal;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
  /** Called once the container exists, before it starts (tests use it to watch usage). */
  readonly onCreated?: (container: PluginContainer) => void | Promise<void>;
  /**
   * The egress proxy a plugin with network capabilities goes through. Default: one started
   * for this run and removed after it.
   */
  readonly egress?: Egress;
  /**
   * The operator policy: checked again here (LM_POLICY_DENIED), and it decides the system
   * calls allowed beyond the profile and the OCI runtime. Default: NO_POLICY.
   */
  readonly policy?: Policy;
  /** What the plugin's verified signature lists (absent: unsigned): a compiled plugin is built only from exactly these files. */
  readonly signed?: SignedContent;
  /**
   * Test hooks around the check of the plugin's host paths: `beforeMounts` right before they
   * are resolved, `afterMounts` once they are held and staged, right before the container is
   * created. A test swaps a folder for a symlink there.
   */
  readonly hooks?: MountHooks;
}

export interface MountHooks {
  readonly beforeMounts?: () => void | Promise<void>;
  readonly afterMounts?: () => void | Promise<void>;
  /** See PluginImageOptions.afterSnapshot. */
  readonly afterSnapshot?: PrepareOptions['afterSnapshot'];
}

export interface RunResult {
  readonly exitCode: number;
  /** The kernel's OOM killer ended the plugin (State.OOMKilled). */
  readonly oomKilled: boolean;
  /** The run was aborted through `signal`. */
  readonly interrupted: boolean;
  readonly containerId: string;
  /** From container start to exit, as the engine recorded it. */
  readonly runMs: number;
}

/**
 * Run a plugin's entrypoint to completion in its sandbox, streaming its output. The
 * container is removed on every path out: exit, error or abort.
 */
export async function runPlugin(opts: RunOptions): Promise<RunResult> {
  const { docker, loaded, log } = opts;
  const runtime = runtimeImage(loaded.manifest.runtime);
  const compiled = await preparePluginImage(docker, runtime, loaded, {
    log,
    ...(opts.progress ? { progress: opts.progress } : {}),
    ...(opts.signed ? { signed: opts.signed } : {}),
    ...(opts.hooks?.afterSnapshot ? { afterSnapshot: opts.hooks.afterSnapshot } : {}),
  });
  if (opts.signal?.aborted) return { exitCode: 130, oomKilled: false, interrupted: true, containerId: '', runMs: 0 };
  checkWritableGrants(loaded.grantedPaths, pluginUid(opts.instance, loaded.manifest.id), pluginGid(opts.instance, loaded.manifest.id));
  const policy = opts.policy ?? NO_POLICY;
  enforcePolicy(loaded, policy); // throws LM_POLICY_DENIED: security.syscalls are allowed only through it
  const ociRuntime = await resolveRuntime(docker, ociRuntimeFor(policy, loaded), loaded.manifest.id, isNetworked(loaded.manifest) ? loaded.file : undefined); // throws LM_RUNTIME_ISOLATION

  // A plugin with network capabilities: its own network to the egress proxy, removed after the run.
  let egress = opts.egress;
  let configDir: string | undefined;
  let network: EgressAttachment | undefined;
  const key = `run-${randomBytes(4).toString('hex')}`;
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- held for its disposal only
  await using _cleanup = {
    async [Symbol.asyncDispose]() {
      await egress?.detach(key);
      if (egress && egress !== opts.egress) await egress.close();
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    },
  };
  if (isNetworked(loaded.manifest)) {
    if (!egress) {
      configDir = mkdtempSync(path.join(os.tmpdir(), 'lm-egress-'));
      egress = await Egress.start({ docker, instance: opts.instance, log, configDir });
    }
    network = await egress.attach(key, loaded.manifest);
  }
  // Every host path is resolved now, from descriptors, and mounted from them: what the
  // engine mounts is what was checked here, whatever is swapped on the host meanwhile.
  await opts.hooks?.beforeMounts?.();
  await using staging = new MountStaging(log);
  const mountSources = await stagePluginMounts(staging, loaded); // throws LM_PATH_CHANGED
  await opts.hooks?.afterMounts?.();
  // Declared after the cleanup, so it is disposed first: the network is removed once the container is gone.
  await using container = await PluginContainer.create(
    docker,
    containerSpec({
      loaded,
      runtime,
      instance: opts.instance,
      mountSources,
      ...(compiled ? { compiled } : {}),
      ...(network ? { network } : {}),
      seccompProfile: pluginSeccompProfile(network !== undefined, loaded.manifest.security.syscalls),
      ...(ociRuntime ? { ociRuntime } : {}),
    }),
    log,
  );
  if (opts.signal?.aborted) return { exitCode: 130, oomKilled: false, interrupted: true, containerId: container.id, runMs: 0 };
  await opts.onCreated?.(container);
  const completion = await container.runToCompletion(opts.stdout, opts.stderr, opts.signal, {
    beforeStart: () => verifyPluginMounts(staging, loaded), // throws LM_PATH_CHANGED
    afterStart: () => staging.release(), // the container holds its own mounts now
  });
  return { ...completion, containerId: container.id };
}
