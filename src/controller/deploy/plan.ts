import { startLevels } from '../dependency-graph.js';
import type { DeployPlan, PlannedChange, PlanStep } from '../types.js';
import { changesBetween, type Fingerprint } from './fingerprint.js';

export type { DeployPlan, PlannedChange, PlanStep } from '../types.js';

/** A plugin as the plan sees it: its id, what it depends on, what it was (or would be) deployed from. */
export interface PlanInput {
  readonly id: string;
  readonly dependsOn: readonly string[];
  readonly fingerprint: Fingerprint;
}

/**
 * Compare what is loaded with what the folder holds. A pure function: the controller's
 * Deployer runs its steps, and `--dry-run` prints it, so both always agree.
 */
export function planDeploy(current: readonly PlanInput[], desired: readonly PlanInput[], prune: boolean): DeployPlan {
  const now = new Map(current.map((p) => [p.id, p]));
  const want = new Set(desired.map((p) => p.id));
  const added: string[] = [];
  const changed: PlannedChange[] = [];
  const unchanged: string[] = [];
  for (const d of desired) {
    const before = now.get(d.id);
    if (!before) {
      added.push(d.id);
      continue;
    }
    const what = changesBetween(before.fingerprint, d.fingerprint);
    if (what.length) changed.push({ id: d.id, what });
    else unchanged.push(d.id);
  }
  const gone = current.filter((p) => !want.has(p.id)).map((p) => p.id);
  const removed = prune ? gone : [];
  const kept = prune ? [] : gone;

  // The new set: the folder's plugins, and the kept ones. Its levels order the additions and replacements.
  const after = [...desired, ...current.filter((p) => kept.includes(p.id))];
  const acting = new Map<string, PlanStep['action']>([...added.map((id) => [id, 'add'] as const), ...changed.map((c) => [c.id, 'replace'] as const)]);
  const steps: PlanStep[] = [];
  for (const level of startLevels(after)) for (const id of [...level].sort()) if (acting.has(id)) steps.push({ action: acting.get(id)!, id });
  // Removals against the current graph, reversed: a removed plugin after those that depend on it.
  const removing = new Set(removed);
  for (const level of startLevels(current).reverse()) for (const id of [...level].sort()) if (removing.has(id)) steps.push({ action: 'remove', id });
  return { added: added.sort(), changed: changed.sort((a, b) => a.id.localeCompare(b.id)), removed: removed.sort(), unchanged: unchanged.sort(), kept: kept.sort(), steps };
}
