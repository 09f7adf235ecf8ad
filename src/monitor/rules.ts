import type { KillOnExceed, Monitoring, MonitoringAlerts, PressureRule, ThrottleRule } from '../manifest/types.js';
import type { MonitoringPolicy, Policy } from '../policy/policy.js';

/** The alerts and kill rules in force for one plugin, with where each came from. */
export interface EffectiveMonitoring {
  readonly alerts: MonitoringAlerts;
  readonly killOnExceed: KillOnExceed;
  /** For each rule set by the policy: the policy rule it comes from (`<file> /monitoring/alerts/memoryPercent`). */
  readonly fromPolicy: readonly string[];
}

const DEFAULT_HYSTERESIS = 10;
const DEFAULT_THROTTLE_WINDOW_MS = 10_000;
const DEFAULT_PRESSURE_WINDOW_MS = 2000;

/** The lower of two optional percents: a policy percent is a ceiling the manifest may go under. */
function lower(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

function throttle(m: ThrottleRule | undefined, p: Partial<ThrottleRule> | undefined): ThrottleRule | undefined {
  const percent = lower(m?.percent, p?.percent);
  if (percent === undefined) return undefined;
  return { percent, windowMs: p?.windowMs ?? m?.windowMs ?? DEFAULT_THROTTLE_WINDOW_MS };
}

function pressure(m: PressureRule | undefined, p: Partial<PressureRule> | undefined): PressureRule | undefined {
  const cpu = lower(m?.cpu, p?.cpu);
  const memory = lower(m?.memory, p?.memory);
  const io = lower(m?.io, p?.io);
  if (cpu === undefined && memory === undefined && io === undefined) return undefined;
  return {
    ...(cpu !== undefined ? { cpu } : {}),
    ...(memory !== undefined ? { memory } : {}),
    ...(io !== undefined ? { io } : {}),
    windowMs: p?.windowMs ?? m?.windowMs ?? DEFAULT_PRESSURE_WINDOW_MS,
  };
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The monitoring rules in force for a plugin: its manifest's `monitoring`, made stricter by
 * the operator policy's (the plugin's override under `plugins.<id>.monitoring` where there
 * is one, else the policy-wide section). Each percent is the lower of the two; a window or
 * `forMs` the policy sets replaces the manifest's. Pure.
 */
export function monitoringRules(monitoring: Monitoring, policy: Policy, pluginId: string): EffectiveMonitoring {
  const override = Object.prototype.hasOwnProperty.call(policy.plugins, pluginId) ? policy.plugins[pluginId]?.monitoring : undefined;
  const p: MonitoringPolicy = override ?? policy.monitoring ?? {};
  const at = override ? `/plugins/${pluginId}/monitoring` : '/monitoring';
  const m = monitoring;
  const alerts: MonitoringAlerts = defined({
    memoryPercent: lower(m.alerts.memoryPercent, p.alerts?.memoryPercent),
    processesPercent: lower(m.alerts.processesPercent, p.alerts?.processesPercent),
    fileHandlesPercent: lower(m.alerts.fileHandlesPercent, p.alerts?.fileHandlesPercent),
    tmpPercent: lower(m.alerts.tmpPercent, p.alerts?.tmpPercent),
    hysteresisPercent: p.alerts?.hysteresisPercent ?? m.alerts.hysteresisPercent ?? DEFAULT_HYSTERESIS,
    throttling: throttle(m.alerts.throttling, p.alerts?.throttling),
    pressure: pressure(m.alerts.pressure, p.alerts?.pressure),
  });
  const pm = p.killOnExceed?.memory;
  const memPercent = lower(m.killOnExceed.memory?.percent, pm?.percent);
  const killOnExceed: KillOnExceed = defined({
    memory: memPercent === undefined ? undefined : { percent: memPercent, forMs: pm?.forMs ?? m.killOnExceed.memory?.forMs ?? 0 },
    throttling: throttle(m.killOnExceed.throttling, p.killOnExceed?.throttling),
    pressure: pressure(m.killOnExceed.pressure, p.killOnExceed?.pressure),
  });
  const fromPolicy: string[] = [];
  for (const [section, rules] of [
    ['alerts', p.alerts],
    ['killOnExceed', p.killOnExceed],
  ] as const) {
    for (const key of Object.keys(rules ?? {})) fromPolicy.push(`${policy.file ?? '(no policy)'} ${at}/${section}/${key}`);
  }
  return { alerts, killOnExceed, fromPolicy };
}

/** No rules at all (a plugin watched without a manifest, as in tests and benchmarks). */
export const NO_RULES: EffectiveMonitoring = Object.freeze({ alerts: Object.freeze({ hysteresisPercent: DEFAULT_HYSTERESIS }), killOnExceed: Object.freeze({}), fromPolicy: Object.freeze([]) });
