import type { Docker } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { OciRuntimeDecision } from '../policy/decisions.js';

/** The runtimes the engine has, from `docker info` (Runtimes); the default one first. */
export function engineRuntimes(info: { Runtimes?: Record<string, unknown>; DefaultRuntime?: string }): string[] {
  const names = Object.keys(info.Runtimes ?? {}).sort();
  const d = info.DefaultRuntime;
  return d && names.includes(d) ? [d, ...names.filter((n) => n !== d)] : names;
}

/**
 * Check a runtime decision against the runtimes the engine has. Pure. Returns the name for
 * HostConfig.Runtime (undefined: the engine's default); throws LM_RUNTIME_ISOLATION naming
 * the runtime and the ones available when the engine does not have it.
 */
export function checkRuntime(decision: OciRuntimeDecision, available: readonly string[], pluginId: string): string | undefined {
  const { runtime } = decision;
  if (runtime === undefined) return undefined;
  if (available.includes(runtime)) return runtime;
  throw new LogoMeshError(
    'LM_RUNTIME_ISOLATION',
    `plugin ${pluginId} needs the OCI runtime '${runtime}' (${decision.rule}), which the Docker engine does not have; available: ${available.join(', ') || 'none'}. Install it and register it in the engine's daemon.json "runtimes" (docs/security.md#oci-runtimes)`,
    { plugin: pluginId, runtime, available: [...available], rule: decision.rule, expected: `a runtime the engine has (${available.join(', ') || 'none'})`, found: `'${runtime}'` },
  );
}

/** A runtime's registration, as `docker info` (Runtimes) shows it. */
interface RuntimeInfo {
  readonly path?: string;
  readonly runtimeArgs?: readonly string[];
}

/**
 * A plugin with network capabilities cannot run on a runtime registered without a network
 * (gVisor's `runsc --network=none`, as provisioning registers it): its egress network would
 * be cut off inside the sandbox. `networkedManifest`: the manifest file of a plugin with
 * network capabilities (undefined for one without). Pure; throws LM_RUNTIME_ISOLATION.
 */
export function checkRuntimeNetwork(runtime: string, registration: RuntimeInfo | undefined, networkedManifest: string | undefined, pluginId: string): void {
  if (networkedManifest === undefined || !registration?.runtimeArgs?.includes('--network=none')) return;
  throw new LogoMeshError(
    'LM_RUNTIME_ISOLATION',
    `plugin ${pluginId} has network capabilities (${networkedManifest} /capabilities), and the OCI runtime '${runtime}' is registered with --network=none (no network inside its sandbox); run it on a runtime with a network, or without network capabilities (docs/security.md#oci-runtimes)`,
    { plugin: pluginId, runtime, file: networkedManifest, path: '/capabilities', expected: 'a runtime with a network, for a plugin with network capabilities', found: `'${runtime}' with --network=none` },
  );
}

/** checkRuntime (and checkRuntimeNetwork) against the engine's runtimes right now; asks the engine only when a runtime is named. */
export async function resolveRuntime(docker: Docker, decision: OciRuntimeDecision, pluginId: string, networkedManifest?: string): Promise<string | undefined> {
  if (decision.runtime === undefined) return undefined;
  const info = (await docker.info()) as { Runtimes?: Record<string, RuntimeInfo>; DefaultRuntime?: string };
  const runtime = checkRuntime(decision, engineRuntimes(info), pluginId);
  if (runtime !== undefined) checkRuntimeNetwork(runtime, info.Runtimes?.[runtime], networkedManifest, pluginId);
  return runtime;
}
