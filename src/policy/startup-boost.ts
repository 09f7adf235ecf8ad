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

export type BoostDecision =
  | { readonly boost: true; readonly cpuPercent: number; readonly maxMs: number; readonly rule: string }
  | { readonly boost: false; readonly why: string };

/**
 * The boost for one plugin container: `declaredPercent` is its CPU quota (the manifest's, or
 * the operator's live limit), `ociRuntime` the runtime it runs with (absent: the engine's
 * default). The policy's section for the plugin replaces the policy-wide one, field by field
 * over the defaults; the boost never goes above the policy's maxCpuPercent ceiling for the
 * plugin, and a plugin already declared at or above it gets none.
 */
export function startupBoostFor(policy: Policy, pluginId: string, declaredPercent: number, ociRuntime?: string): BoostDecision {
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
  return { boost: true, cpuPercent, maxMs, rule };
}
