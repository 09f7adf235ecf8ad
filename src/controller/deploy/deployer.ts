import path from 'node:path';
import { LogoMeshError } from '../../errors.js';
import { loadFolders } from '../../manifest/folders.js';
import type { LoadedManifest } from '../../manifest/types.js';
import type { Policy } from '../../policy/policy.js';
import type { SignedContent } from '../../signing/signature.js';
import type { ControllerContext } from '../context.js';
import type { Launcher, Supervision } from '../launcher.js';
import { managed, serialize, type Managed } from '../managed.js';
import type { ApplyResult, ApplyStep } from '../types.js';
import { fingerprintOf, policyHashOf } from './fingerprint.js';
import { planDeploy, type DeployPlan, type PlanInput } from './plan.js';
import { replacePlugin } from './replace.js';

/** What the deployer needs of the controller's facade. */
export interface DeployHooks {
  /**
   * The policy an apply checks against: the one in force, or, when it came from a file
   * (LOGOMESH_POLICY), that file read again (throws LM_POLICY_INVALID).
   */
  currentPolicy(): Policy;
  /** Make a newly read policy the one in force. */
  usePolicy(policy: Policy): void;
  /** Add checked manifests to the registry (Controller.load), each with what its signature vouches for. */
  load(manifests: readonly LoadedManifest[], verified: Map<LoadedManifest, SignedContent | undefined>): string[];
  start(id: string): Promise<void>;
  unload(id: string): Promise<void>;
}

export interface ApplyOptions {
  /** Plan only: print what would change, change nothing (nothing is audited either). */
  readonly dryRun?: boolean;
  /** Remove the loaded plugins that are not in the folder. */
  readonly prune?: boolean;
}

const quiet = () => undefined;

/**
 * Manifest-driven deploys (docs/deploys.md): `apply` makes the running set what a folder
 * says, `load` adds plugins. The folder is read and checked whole first (manifests,
 * signatures, policy, ids, users, dependencies): a refusal changes nothing. Then the
 * plan's steps run one at a time: additions and replacements a dependency level at a time,
 * removals last. One deploy at a time.
 */
export class Deployer {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cx: ControllerContext,
    private readonly launcher: Launcher,
    private readonly supervision: Supervision,
    private readonly hooks: DeployHooks,
  ) {}

  /** The fingerprint a plugin loaded now is deployed from. */
  fingerprint(l: LoadedManifest): Managed['deployed'] {
    return fingerprintOf(l, policyHashOf(this.cx.policy()));
  }

  apply(dir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
    return this.exclusive(() => this.applyNow(path.resolve(dir), opts));
  }

  /** Load the plugin folders under `dir` (none of them loaded yet) and start them in dependency order. */
  load(dir: string): Promise<string[]> {
    return this.exclusive(async () => {
      const manifests = loadFolders(dir);
      const verified = this.cx.registry.checkSet([...this.cx.registry.records().map((m) => m.loaded), ...manifests], manifests);
      const ids = this.hooks.load(manifests, verified);
      const fresh = new Set(ids);
      for (const level of this.cx.registry.levels()) await Promise.all(level.filter((id) => fresh.has(id)).map((id) => this.hooks.start(id)));
      return ids;
    });
  }

  private async applyNow(dir: string, opts: ApplyOptions): Promise<ApplyResult> {
    const t0 = Date.now();
    const { registry } = this.cx;
    const desired = loadFolders(dir); // LM_MANIFEST_*: nothing changes
    const policy = this.hooks.currentPolicy();
    const policyHash = policyHashOf(policy);
    const current: PlanInput[] = registry.records().map((m) => ({ id: m.loaded.manifest.id, dependsOn: m.loaded.manifest.dependencies.plugins, fingerprint: m.deployed ?? fingerprintOf(m.loaded, policyHashOf(this.cx.policy())) }));
    const wanted: (PlanInput & { loaded: LoadedManifest })[] = desired.map((l) => ({ id: l.manifest.id, dependsOn: l.manifest.dependencies.plugins, fingerprint: fingerprintOf(l, policyHash), loaded: l }));
    const plan = planDeploy(current, wanted, opts.prune === true);
    const byId = new Map(wanted.map((w) => [w.id, w]));
    const fresh = [...plan.added, ...plan.changed.map((c) => c.id)].map((id) => byId.get(id)!.loaded);
    const all = [...desired, ...plan.kept.map((id) => registry.get(id).loaded)];
    const verified = registry.checkSet(all, fresh, { policy, ...(opts.dryRun ? { audit: quiet } : {}) });
    if (opts.dryRun) return { dir, dryRun: true, plan, steps: [], ms: Date.now() - t0 };
    if (policyHash !== policyHashOf(this.cx.policy())) this.hooks.usePolicy(policy);
    this.cx.audit.record({ who: 'operator', action: 'apply', resource: dir, result: 'allowed', reason: summary(plan) });
    const steps: ApplyStep[] = [];
    for (const step of plan.steps) {
      const s0 = Date.now();
      try {
        const w = byId.get(step.id);
        if (step.action === 'add') {
          this.hooks.load([w!.loaded], verified);
          await this.hooks.start(step.id);
          steps.push({ ...step, ok: true, ms: Date.now() - s0 });
        } else if (step.action === 'replace') {
          const old = registry.get(step.id);
          const next = managed(w!.loaded, verified.get(w!.loaded), old.logs);
          next.deployed = w!.fingerprint;
          const r = await serialize(old, () => replacePlugin(this.cx, this.launcher, this.supervision, old, next));
          steps.push({ ...step, ok: true, ms: Date.now() - s0, readyMs: r.readyMs, retireMs: r.retireMs, handover: r.handover });
        } else {
          await this.hooks.unload(step.id);
          steps.push({ ...step, ok: true, ms: Date.now() - s0 });
        }
      } catch (err) {
        const e = err instanceof LogoMeshError ? err : new LogoMeshError('LM_ENGINE_ERROR', String((err as Error)?.message ?? err), {}, { cause: err });
        steps.push({ ...step, ok: false, ms: Date.now() - s0, error: { code: e.code, message: e.message } });
        const done = steps.filter((x) => x.ok).map((x) => `${x.action} ${x.id}`);
        const left = plan.steps.slice(steps.length).map((x) => `${x.action} ${x.id}`);
        throw new LogoMeshError(e.code, `apply ${dir}: ${step.action} ${step.id} failed: ${e.message}${done.length ? `\ndone: ${done.join(', ')}` : ''}${left.length ? `\nnot done: ${left.join(', ')}` : ''}`, { ...e.details, plan, steps, plugin: step.id }, { cause: e });
      }
    }
    return { dir, dryRun: false, plan, steps, ms: Date.now() - t0 };
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function summary(plan: DeployPlan): string {
  const parts = [
    plan.added.length ? `add ${plan.added.join(', ')}` : '',
    plan.changed.length ? `replace ${plan.changed.map((c) => c.id).join(', ')}` : '',
    plan.removed.length ? `remove ${plan.removed.join(', ')}` : '',
  ].filter(Boolean);
  return parts.join('; ') || 'nothing to change';
}
