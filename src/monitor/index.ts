/** The resource monitor (issue 16): what the controller, the hub and the CLI use. See docs/monitoring.md. */
export { ResourceMonitor, type MonitorOptions } from './monitor.js';
export type { WatchTarget } from './plugin-watch.js';
export type { ResourceUsage, ResourceViolation, ViolationKind, ViolationAction, WatchedLimits } from './types.js';
export { VIOLATION_KINDS } from './types.js';
export { monitoringRules, NO_RULES, type EffectiveMonitoring } from './rules.js';
export { alertOnThreshold, killOnExceed, throttledShare, psiTrigger, pressureCrossing } from './policies.js';
export { enforceLimit, checkLimitChange, LIMIT_BOUNDS, type LimitChange, type ChangedLimit } from './enforce-limit.js';
export { MonitorMetrics, PLUGIN_STATES, type MetricsSources, type PluginStateSample } from './metrics.js';
export { metricsAddress, startMetricsEndpoint, METRICS_ENV, METRICS_PUBLIC_ENV, type MetricsEndpoint } from './metrics-server.js';
export { statsTable, statsJson, formatBytes, type StatsRow } from './stats-table.js';
export { watchedLimits } from './limits.js';
