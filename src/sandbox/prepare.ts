import type { ContainerCreateOptions } from 'dockerode';
import type { AuditSink } from '../audit/audit-log.js';
import type { Docker } from '../engine/docker.js';
import { preparePluginImage, type PrepareOptions } from '../images/plugin-image.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import { enforcePolicy, ociRuntimeFor } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { pluginGid, pluginUid, runtimeImage } from '../runtimes/index.js';
import type { SignedContent } from '../signing/signature.js';
import { operatorMountLabels, stageContainerMounts, type OperatorMount } from './container-mounts.js';
import { containerSpec } from './container-spec.js';
import { isNetworked, type EgressAttachment } from './egress.js';
import { resolveRuntime } from './oci-runtime.js';
import { pluginSeccompProfile } from '../seccomp/profiles.js';
import { checkWritableGrants } from './writable-grants.js';
import type { HealthCheckSpec } from './health-check.js';

/** Fixed points of the pipeline where a test makes its swaps, instead of relying on timing. */
export interface SandboxHooks {
  /** Right before the plugin's host paths are resolved. */
  readonly beforeMounts?: () => void | Promise<void>;
  /** Once they are held and staged, right before the spec is made and the container created. */
  readonly afterMounts?: () => void | Promise<void>;
  /** See PluginImageOptions.afterSnapshot. */
  readonly afterSnapshot?: PrepareOptions['afterSnapshot'];
}

export interface SandboxRequest {
  readonly docker: Docker;
  readonly loaded: LoadedManifest;
  /** Controller (or run) instance that owns what is created (see labels.ts); also derives the plugin's user. */
  readonly instance: string;
  readonly log: Logger;
  /** Checked again here (LM_POLICY_DENIED); it decides the extra system calls and the OCI runtime. */
  readonly policy: Policy;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
  /** What the plugin's verified signature lists (absent: unsigned): a compiled plugin is built only from exactly these files. */
  readonly signed?: SignedContent;
  readonly hooks?: SandboxHooks;
  /** Checked once the image is ready: aborted, nothing more is prepared (prepareSandbox returns undefined). */
  readonly signal?: AbortSignal;
  /** Called only for a plugin with network capabilities: its network to an egress proxy. */
  readonly network?: (loaded: LoadedManifest) => Promise<EgressAttachment>;
  /** The operator's path grants to mount beside the manifest's, each checked again by the caller now. */
  readonly operatorMounts?: () => readonly OperatorMount[];
  /** Host folder of the plugin's hub socket (under a controller). */
  readonly hubSocketDir?: string;
  /** Host folder of the shared-memory pool (under a controller, for a plugin that sets sharedMemory). */
  readonly segmentsDir?: string;
  /** The Docker health check showing the controller's view (under a controller, with hubSocketDir). */
  readonly healthCheck?: HealthCheckSpec;
  /** Container name; the engine picks one when absent. */
  readonly name?: string;
  /** Where mount refusals go (`mount denied`); default: nowhere. */
  readonly audit?: AuditSink;
  /** Last changes to the spec before it is returned (a controller's debug mode: image, command, seccomp profile). */
  readonly adjustSpec?: (spec: ContainerCreateOptions) => Promise<void>;
}

/** A plugin's sandbox, ready to be created: the spec, and the staged mounts it refers to. */
export interface PreparedSandbox extends AsyncDisposable {
  readonly spec: ContainerCreateOptions;
  /** Right before the container starts (when the engine mounts): is every staged source still what was checked? Throws LM_PATH_CHANGED. */
  verify(): void;
  /** Once the container started, or on any failure: the staging mounts go. Idempotent. */
  release(): Promise<void>;
}

/**
 * The one way a plugin's sandbox is assembled, for `logomesh run` and the controller alike:
 * its image (runtime, packages or compiled, with the dependency checks), the writable-grant
 * ownership check, the policy, the OCI runtime, its network when it has network
 * capabilities, every host path resolved now from descriptors and staged (what the engine
 * mounts is what was checked, whatever is swapped on the host meanwhile), and the container
 * spec with its seccomp profile. Throws the step's coded error; nothing is left staged.
 */
export async function prepareSandbox(req: SandboxRequest): Promise<PreparedSandbox | undefined> {
  const { docker, loaded, log, instance } = req;
  const id = loaded.manifest.id;
  const runtime = runtimeImage(loaded.manifest.runtime);
  const compiled = await preparePluginImage(docker, runtime, loaded, {
    log,
    instance,
    ...(req.progress ? { progress: req.progress } : {}),
    ...(req.signed ? { signed: req.signed } : {}),
    ...(req.hooks?.afterSnapshot ? { afterSnapshot: req.hooks.afterSnapshot } : {}),
  });
  if (req.signal?.aborted) return undefined;
  checkWritableGrants(loaded.grantedPaths, pluginUid(instance, id), pluginGid(instance, id));
  const operatorMounts = req.operatorMounts?.() ?? [];
  enforcePolicy(loaded, req.policy); // throws LM_POLICY_DENIED: security.syscalls are allowed only through it
  const ociRuntime = await resolveRuntime(docker, ociRuntimeFor(req.policy, loaded), id, isNetworked(loaded.manifest) ? loaded.file : undefined); // throws LM_RUNTIME_ISOLATION
  const network = isNetworked(loaded.manifest) && req.network ? await req.network(loaded) : undefined;
  await req.hooks?.beforeMounts?.();
  const mounts = await stageContainerMounts({ log, audit: req.audit ?? (() => undefined), loaded, grants: operatorMounts }); // throws LM_PATH_CHANGED, LM_GRANT_PATH
  try {
    await req.hooks?.afterMounts?.();
    const spec = containerSpec({
      loaded,
      runtime,
      instance,
      mountSources: mounts.sources,
      ...(req.hubSocketDir ? { hubSocketDir: req.hubSocketDir } : {}),
      ...(req.segmentsDir ? { segmentsDir: req.segmentsDir } : {}),
      ...(req.healthCheck ? { healthCheck: req.healthCheck } : {}),
      ...(req.name ? { name: req.name } : {}),
      ...(compiled ? { compiled } : {}),
      ...(network ? { network } : {}),
      seccompProfile: pluginSeccompProfile(network !== undefined, loaded.manifest.security.syscalls),
      ...(ociRuntime ? { ociRuntime } : {}),
    });
    if (operatorMounts.length) {
      spec.HostConfig!.Mounts = [...(spec.HostConfig!.Mounts ?? []), ...mounts.grantMounts];
      spec.Labels = { ...spec.Labels, ...operatorMountLabels(operatorMounts) };
    }
    await req.adjustSpec?.(spec);
    return { spec, verify: mounts.verify, release: mounts.release, [Symbol.asyncDispose]: mounts.release };
  } catch (err) {
    await mounts.release();
    throw err;
  }
}
