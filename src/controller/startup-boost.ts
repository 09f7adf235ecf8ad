import type { ContainerCreateOptions } from 'dockerode';
import os from 'node:os';
import type { AuditSink } from '../audit/audit-log.js';
import { engineStatus, errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import { LABEL } from '../labels.js';
import type { Logger } from '../log.js';
import { startupBoostFor, type BoostDecision, type StartCrowd } from '../policy/startup-boost.js';
import { CPU_PERIOD_US, cpuQuotaUs, cpuShares } from '../sandbox/container-spec.js';
import type { ControllerContext } from './context.js';
import { withLiveLimits } from './live-limits.js';
import type { Managed } from './managed.js';
import type { BoostEnd, BoostStatus } from './types.js';

/** The engine call that sets a running container's CPU quota and shares (`docker update`). */
export type CpuUpdate = (containerId: string, values: { CpuPeriod: number; CpuQuota: number; CpuShares: number }) => Promise<void>;

export interface BoostDeps {
  readonly update: CpuUpdate;
  readonly audit: AuditSink;
  readonly log: Logger;
  /** The plugin's declared quota now (its manifest's, or the operator's live limit): read when the boost ends. */
  readonly declaredPercent: () => number;
  /** The quota could not be lowered: the caller stops the container. */
  readonly onFailed: (err: LogoMeshError) => void;
}

/**
 * Plan the boost of a plugin container about to be created from `spec` (the policy decides,
 * startupBoostFor), and write it into the spec. Undefined: no boost (turned off, an OCI
 * runtime that cannot lower it, a quota already as high). `onFailed` stops the container.
 */
export function boostFor(cx: Pick<ControllerContext, 'docker' | 'audit' | 'log' | 'policy' | 'registry'>, m: Managed, spec: ContainerCreateOptions, onFailed: (err: LogoMeshError) => void): StartupBoost | undefined {
  const id = m.loaded.manifest.id;
  // Read at the end too: an operator's live limit set during the boost is what it returns to.
  const declaredPercent = () => withLiveLimits(m.loaded, m.liveLimits).manifest.resources.maxCpuPercent;
  const decision = startupBoostFor(cx.policy(), id, declaredPercent(), spec.HostConfig?.Runtime, startCrowd(cx.registry.records(), m));
  if (!decision.boost) {
    cx.log.debug({ plugin: id, why: decision.why }, 'no start-up CPU boost');
    return undefined;
  }
  boostSpec(spec, decision.cpuPercent, declaredPercent());
  return new StartupBoost(id, decision, { update: engineCpuUpdate(cx.docker), audit: cx.audit.record, log: cx.log, declaredPercent, onFailed });
}

/**
 * The plugins starting now (an `up` starts up to startConcurrency at once), `self` counted
 * once even when it is not `starting` (a ready plugin's warm standby), on this host's CPUs:
 * the engine is the local one in every backend that boosts (Docker).
 */
export function startCrowd(records: Iterable<Pick<Managed, 'state'>>, self: Pick<Managed, 'state'>, cpus = os.availableParallelism()): StartCrowd {
  let starting = self.state === 'starting' ? 0 : 1;
  for (const m of records) if (m.state === 'starting') starting++;
  return { starting, cpus };
}

/** Attempts to lower the quota, and the pause before each retry: an engine hiccup is retried, a refusal is not left standing. */
const RETRY_DELAYS_MS = [100, 400];

/**
 * Write a boost into a container spec: the quota and the CPU shares of the boost (a 25%
 * plugin weighs a quarter of a default container, and on a busy host its start waits for the
 * CPU by that weight as much as by its quota), and labels recording the boosted and the
 * declared quota, so that a controller adopting the container after a kill can lower it.
 */
export function boostSpec(spec: ContainerCreateOptions, cpuPercent: number, declaredPercent: number): void {
  spec.HostConfig = { ...spec.HostConfig, CpuPeriod: CPU_PERIOD_US, CpuQuota: cpuQuotaUs(cpuPercent), CpuShares: cpuShares(cpuPercent) };
  spec.Labels = { ...spec.Labels, [LABEL.cpuBoost]: String(cpuQuotaUs(cpuPercent)), [LABEL.cpuDeclared]: String(cpuQuotaUs(declaredPercent)) };
}

/**
 * One container's start-up CPU boost (docs/security.md#start-up-cpu-boost), from its start
 * to its end: at the hello (`end('ready')`) or at the hard deadline, whichever comes first,
 * so a plugin that delays its hello keeps the boost no longer than the deadline. Lowering
 * the quota is retried; if the engine still refuses, the boost is not left silently in
 * place: LM_BOOST_FAILED is audited and the container is stopped (`onFailed`).
 */
export class StartupBoost {
  private timer?: NodeJS.Timeout;
  private ending?: Promise<void>;
  private state: BoostStatus;
  private containerId?: string;
  /** Why the quota could not be lowered, once it could not. */
  error?: LogoMeshError;

  constructor(
    private readonly pluginId: string,
    decision: Extract<BoostDecision, { boost: true }>,
    private readonly deps: BoostDeps,
    private readonly maxMs = decision.maxMs,
  ) {
    this.state = { cpuPercent: decision.cpuPercent, declaredPercent: deps.declaredPercent(), since: 0, deadline: 0 };
  }

  get status(): BoostStatus {
    return this.state;
  }

  /** The container starts now: the deadline runs from here. Audited. */
  begin(containerId: string): void {
    this.containerId = containerId;
    const since = Date.now();
    this.state = { ...this.state, since, deadline: since + this.maxMs };
    this.timer = setTimeout(() => void this.end('deadline'), this.maxMs);
    this.timer.unref();
    const { cpuPercent, declaredPercent } = this.state;
    this.deps.audit({ who: 'controller', action: 'boost', resource: this.pluginId, result: 'started', reason: `CPU quota ${cpuPercent}% (declared ${declaredPercent}%) until its hello, at most ${this.maxMs} ms` });
  }

  /** Lower the quota to the declared one (once; later calls get the same promise). Never rejects: a failure stops the container. */
  end(by: Exclude<BoostEnd, 'failed' | 'gone'>): Promise<void> {
    clearTimeout(this.timer);
    this.ending ??= this.lower(by);
    return this.ending;
  }

  /** Settles once the boost has ended (immediately if it was never begun or ending). */
  get ended(): Promise<void> {
    return this.ending ?? Promise.resolve();
  }

  /** The container is being removed: no deadline any more, nothing to lower. */
  cancel(): void {
    clearTimeout(this.timer);
    this.ending ??= Promise.resolve();
  }

  private async lower(by: Exclude<BoostEnd, 'failed' | 'gone'>): Promise<void> {
    const id = this.containerId;
    if (!id) return;
    const declared = this.deps.declaredPercent();
    const values = { CpuPeriod: CPU_PERIOD_US, CpuQuota: cpuQuotaUs(declared), CpuShares: cpuShares(declared) };
    let last: unknown;
    for (let attempt = 0; attempt <= RETRY_DELAYS_MS.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt - 1]));
      try {
        await this.deps.update(id, values);
        return this.finish(by, declared);
      } catch (err) {
        // Gone: nothing of it runs boosted any more.
        if (engineStatus(err) === 404) return this.finish('gone', declared);
        last = err;
      }
    }
    this.error = new LogoMeshError('LM_BOOST_FAILED', `plugin ${this.pluginId}: its CPU quota could not be lowered from the start-up boost of ${this.state.cpuPercent}% to ${declared}% (${errorText(last)}); the container is stopped`, {
      plugin: this.pluginId,
      container: id,
      expected: `CPU quota ${declared}%`,
      found: `${this.state.cpuPercent}%`,
    });
    this.state = { ...this.state, declaredPercent: declared, endedAt: Date.now(), endedBy: 'failed' };
    this.deps.audit({ who: 'controller', action: 'boost', resource: this.pluginId, result: 'failed', code: 'LM_BOOST_FAILED', reason: this.error.message });
    this.deps.log.error({ plugin: this.pluginId, code: 'LM_BOOST_FAILED', err: errorText(last) }, this.error.message);
    this.deps.onFailed(this.error);
  }

  private finish(by: BoostEnd, declared: number): void {
    const endedAt = Date.now();
    this.state = { ...this.state, declaredPercent: declared, endedAt, endedBy: by };
    const reason = `${by === 'ready' ? 'its hello was accepted' : by === 'deadline' ? 'the deadline passed without a hello' : by === 'adopted' ? 'adopted by a new controller' : 'the container is gone'} after ${endedAt - this.state.since} ms: CPU quota ${declared}%`;
    this.deps.audit({ who: 'controller', action: 'boost', resource: this.pluginId, result: 'ended', reason });
    this.deps.log.debug({ plugin: this.pluginId, by, ms: endedAt - this.state.since }, 'start-up CPU boost ended');
  }
}

/**
 * A container adopted from an earlier controller that was killed during its boost still has
 * the boosted quota (nothing else lowers it): put the declared one back now, before the
 * plugin's hello. Only when the quota is still the boost's (an operator's live limit since
 * is left alone). Returns whether it lowered it; throws LM_BOOST_FAILED when the engine refuses.
 */
export async function endAdoptedBoost(
  labels: Readonly<Record<string, string>>,
  inspect: () => Promise<{ HostConfig: { CpuQuota?: number } }>,
  containerId: string,
  update: CpuUpdate,
): Promise<{ from: number; to: number } | undefined> {
  const boost = Number(labels[LABEL.cpuBoost]);
  const declared = Number(labels[LABEL.cpuDeclared]);
  if (!Number.isInteger(boost) || !Number.isInteger(declared) || boost <= 0 || declared <= 0) return undefined;
  const now = (await inspect()).HostConfig.CpuQuota;
  if (now !== boost) return undefined;
  const percent = (declared / CPU_PERIOD_US) * 100;
  try {
    await update(containerId, { CpuPeriod: CPU_PERIOD_US, CpuQuota: declared, CpuShares: cpuShares(percent) });
  } catch (err) {
    throw new LogoMeshError('LM_BOOST_FAILED', `container ${containerId.slice(0, 12)}: its CPU quota could not be lowered from its start-up boost (${boost} us) to the declared ${declared} us at adoption (${errorText(err)})`, { container: containerId, expected: `CPU quota ${declared} us`, found: `${boost} us` });
  }
  return { from: (boost / CPU_PERIOD_US) * 100, to: percent };
}

/** The engine's `docker update` of CPU values, as a CpuUpdate. */
export function engineCpuUpdate(docker: { getContainer(id: string): { update(opts: object): Promise<unknown> } }): CpuUpdate {
  return async (id, values) => {
    await docker.getContainer(id).update(values);
  };
}
