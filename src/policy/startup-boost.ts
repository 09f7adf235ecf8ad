import type { Policy, StartupBoostPolicy } from './policy-types.js';

/**
 * The start-up CPU boost (docs/security.md#start-up-cpu-boost): a plugin container under the
 * controller starts with a larger CFS quota than its manifest declares, and is lowered to the
 * declared one when its hello is accepted or at a hard deadline, whichever comes first. The
 * container start (runc, docker-init) and a runtime with its SDK need tens of ms of CPU, which
 * a 25% quota hands out 25 ms per 100 ms period. This decides the boost; the controller applies
 * and ends it (controller/startup-boost.ts). Pure.
 */

/** Without a policy section: one core, for at most 2 s after the container's start. */
export const DEFAULT_STARTUP_BOOST: Required<StartupBoostPolicy> = Object.freeze({ cpuPercent: 100, maxMs: 2_000 });

/**
 * OCI runtimes whose containers' limits the engine cannot change while they run (`runsc` has
 * no `update` command: `docker update` fails), so a boosted quota could never be lowered.
 */
export const NO_LIVE_UPDATE_RUNTIMES: readonly string[] = ['runsc'];

/**
 * How many plugin containers are starting at once, and on how many CPUs: while the starts
 * share every CPU already (each at its declared quota, together as much as the host has),
 * a boost gives a start no CPU it would not get anyway and costs an engine update (`docker
 * update`: a runc run and the engine's work) per plugin. Measured on `up` of 200 plugins on
 * two cores (docs/performance.md#scale).
 */
export interface StartCrowd {
  /** Plugins starting now, this one included. */
  readonly starting: number;
  /** CPUs the containers share (the host's). */
  readonly cpus: number;
}

export type BoostDecision =
  | { readonly boost: true; readonly cpuPercent: number; readonly maxMs: number; readonly rule: string }
  | { readonly boost: false; readonly why: string };

/**
 * The boost for one plugin container: `declaredPercent` is its CPU quota (the manifest's, or
 * the operator's live limit), `ociRuntime` the runtime it runs with (absent: the engine's
 * default). The policy's section for the plugin replaces the policy-wide one, field by field
 * over the defaults; the boost never goes above the policy's maxCpuPercent ceiling for the
 * plugin, and a plugin already declared at or above it gets none. With `crowd`, none while the
 * plugins starting at once, at this one's quota each, fill the CPUs (see StartCrowd).
 */
export function startupBoostFor(policy: Policy, pluginId: string, declaredPercent: number, ociRuntime?: string, crowd?: StartCrowd): BoostDecision {
  const own = Object.prototype.hasOwnProperty.call(policy.plugins, pluginId) ? policy.plugins[pluginId] : undefined;
  const section = own?.startupBoost ?? policy.startupBoost;
  const at = own?.startupBoost ? `/plugins/${pluginId}/startupBoost` : '/startupBoost';
  const rule = section ? `${policy.file ?? '(no policy)'} ${at}` : 'the default (no startupBoost in the policy)';
  const wanted = section?.cpuPercent ?? DEFAULT_STARTUP_BOOST.cpuPercent;
  const maxMs = section?.maxMs ?? DEFAULT_STARTUP_BOOST.maxMs;
  if (wanted === 0) return { boost: false, why: `turned off (${rule})` };
  if (ociRuntime && NO_LIVE_UPDATE_RUNTIMES.includes(ociRuntime)) return { boost: false, why: `the OCI runtime ${ociRuntime} cannot lower a running container's quota` };
  const ceiling = (own?.capabilities ?? policy.capabilities).maxCpuPercent;
  const cpuPercent = ceiling === undefined ? wanted : Math.min(wanted, ceiling);
  if (cpuPercent <= declaredPercent) return { boost: false, why: `its quota of ${declaredPercent}% is already at or above the boost of ${cpuPercent}%` };
  // The starts' declared quotas fill every CPU already: the CPU is shared among them whatever the quota.
  if (crowd && crowd.starting * declaredPercent >= crowd.cpus * 100) {
    return { boost: false, why: `${crowd.starting} plugins are starting at once, ${declaredPercent}% each at least as much as the ${crowd.cpus} CPUs: a boost adds an engine update and no CPU` };
  }
  return { boost: true, cpuPercent, maxMs, rule };
}
