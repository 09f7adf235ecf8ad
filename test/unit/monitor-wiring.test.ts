import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { parseLimits } from '../../src/cli/stats.js';
import { withLiveLimits } from '../../src/controller/live-limits.js';
import { Monitoring } from '../../src/controller/monitoring.js';
import type { Docker } from '../../src/engine/docker.js';
import { NO_POLICY } from '../../src/policy/policy.js';
import { VIOLATION_TOPIC, ViolationRouter } from '../../src/controller/violation-routing.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { MAX_SERIES } from '../../src/monitor/call-stats.js';
import { checkLimitChange, MonitorMetrics, type LimitChange, type ResourceViolation } from '../../src/monitor/index.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { HEALTH_EXEC_SPACING_MS, HEALTH_INTERVAL_MS, healthCheckInterval } from '../../src/sandbox/health-check.js';
import { dedent, MAIN_PY, PluginFolders } from './support/plugin-folder.js';
import { Client } from './support/hub-client.js';

/**
 * The monitor's wiring that needs no engine: violation events on the hub and who may hear
 * or forge them, the hub's call metrics, where violations go, `logomesh limit` arguments,
 * live limits in the next container's manifest, and the Docker health check in the spec.
 */

const settle = () => new Promise((r) => setTimeout(r, 150));
const violation = (over: Partial<ResourceViolation> = {}): ResourceViolation => ({ kind: 'memory-threshold', plugin: 'alpha', value: 50, limit: 40, unit: 'bytes', time: 1, action: 'alert', source: 'notification', detail: 'memory in use reached 60%', ...over });

function policy(id: string, p: Partial<PluginPolicy> = {}): PluginPolicy {
  return { id, exposes: new Set(['echo']), consumes: new Set(), messaging: true, publishes: [], subscribes: [], ...p };
}

describe('violation events on the hub', () => {
  let dir: string;
  let hub: Hub;
  const clients: Client[] = [];
  const observed: [string, string, string, number, string][] = [];
  const messages: [string, string][] = [];
  const sock = (id: string) => path.join(dir, id, 'hub.sock');
  const connect = async (id: string, subscriptions: string[] = [], methods: string[] = []) => {
    const c = await Client.open(`ws+unix://${sock(id)}:/v1`);
    clients.push(c);
    const r = await c.reply(c.send({ type: 'hello', protocol: 1, methods, subscriptions }));
    expect(r.success, JSON.stringify(r)).toBe(true);
    return c;
  };

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-wiring-'));
    observed.length = 0;
    messages.length = 0;
    hub = new Hub({ log: silentLogger, token: 't', observeCall: (...a) => observed.push(a), observeMessage: (type, from) => messages.push([type, from]) });
    await hub.attachPlugin(policy('all', { subscribes: [`${VIOLATION_TOPIC}.*`] }), sock('all'));
    await hub.attachPlugin(policy('own', { subscribes: [`${VIOLATION_TOPIC}.own`] }), sock('own'));
    // A plugin that may publish anything it likes, and tries to forge a violation.
    await hub.attachPlugin(policy('forger', { publishes: ['*'], consumes: new Set(['all.echo', 'all.secret']) }), sock('forger'));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reach the host in this process and the plugins whose subscribes cover them, from the host', async () => {
    const all = await connect('all', [`${VIOLATION_TOPIC}.*`]);
    const own = await connect('own', [`${VIOLATION_TOPIC}.own`]);
    const local: { data: unknown; from: string; topic: string }[] = [];
    hub.subscribe(`${VIOLATION_TOPIC}.*`, (data, meta) => local.push({ data, ...meta }));
    hub.announce(`${VIOLATION_TOPIC}.alpha`, violation());
    hub.announce(`${VIOLATION_TOPIC}.own`, violation({ plugin: 'own' }));
    await settle();
    expect(local.map((l) => [l.topic, l.from])).toEqual([
      [`${VIOLATION_TOPIC}.alpha`, 'host'],
      [`${VIOLATION_TOPIC}.own`, 'host'],
    ]);
    expect(all.inbox.filter((m) => m.type === 'event').map((m) => [m.topic, m.from])).toEqual([
      [`${VIOLATION_TOPIC}.alpha`, 'host'],
      [`${VIOLATION_TOPIC}.own`, 'host'],
    ]);
    expect(own.inbox.filter((m) => m.type === 'event').map((m) => m.topic)).toEqual([`${VIOLATION_TOPIC}.own`]);
  });

  it('cannot be forged: no plugin publishes under logomesh., whatever its manifest lists', async () => {
    const all = await connect('all', [`${VIOLATION_TOPIC}.*`]);
    const forger = await connect('forger');
    for (const type of ['event', 'broadcast']) {
      const r = await forger.reply(forger.send({ type, topic: `${VIOLATION_TOPIC}.all`, data: violation({ plugin: 'all', action: 'kill' }) }));
      expect(r).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("topics under 'logomesh.' are the controller's own") } });
    }
    await settle();
    expect(all.inbox.filter((m) => m.type === 'event' || m.type === 'broadcast')).toEqual([]);
  });

  it('observes every call with caller, target, method, seconds and outcome, refusals included, and every message accepted', async () => {
    const all = await connect('all', [], ['echo']);
    all.serve((m) => m.data);
    const forger = await connect('forger');
    expect(await forger.reply(forger.send({ type: 'request', to: ['all'], method: 'echo', data: 1 }))).toMatchObject({ success: true });
    expect(await forger.reply(forger.send({ type: 'request', to: ['all'], method: 'secret', data: 1 }))).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    expect(await hub.call('all', 'echo', 2)).toBe(2);
    expect(observed.map(([c, t, m, , o]) => [c, t, m, o])).toEqual([
      ['forger', 'all', 'echo', 'ok'],
      ['forger', 'all', 'secret', 'LM_PERMISSION_DENIED'],
      ['host', 'all', 'echo', 'ok'],
    ]);
    for (const [, , , seconds] of observed) expect(seconds).toBeGreaterThanOrEqual(0);
    expect(observed[0]![3]).toBeGreaterThan(0);
    expect(messages).toContainEqual(['request', 'forger']);
    expect(messages).toContainEqual(['response', 'all']);
    expect(messages).toContainEqual(['request', 'host']);
  });
});

describe('hub call metrics', () => {
  it('keep at most MAX_SERIES label sets: made-up method names are counted under (other)', async () => {
    const m = new MonitorMetrics();
    for (let i = 0; i < MAX_SERIES + 50; i++) m.observeCall('host', 'alpha', `made-up-${i}`, 0.001, 'LM_PERMISSION_DENIED');
    const families = parsePrometheusTextFormat(await m.text()) as { name: string; metrics: { labels?: Record<string, string>; value?: string }[] }[];
    const calls = families.find((f) => f.name === 'logomesh_hub_calls_total')!.metrics;
    expect(calls).toHaveLength(MAX_SERIES + 1);
    expect(calls).toContainEqual({ labels: { caller: '(other)', target: '(other)', method: '(other)', outcome: 'LM_PERMISSION_DENIED' }, value: '50' });
  }, 30_000); // some 80 000 lines of text to write and parse: well under a second alone, slower beside integration tests
});

describe('where a violation goes', () => {
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const emitted: [string, unknown][] = [];
  const metrics = new MonitorMetrics();
  const router = new ViolationRouter({ log: silentLogger, audit: (e) => audit.push(e), metrics, emit: (t, d) => emitted.push([t, d]) });
  afterAll(() => router.close());

  it('audited with its code (a kill LM_RESOURCE_EXCEEDED), counted, and sent on the plugin topic; a flood is bounded', async () => {
    router.route(violation({ action: 'kill', kind: 'memory-exceeded' }));
    router.route(violation({ action: 'none', kind: 'oom-kill' }));
    expect(audit).toEqual([
      { who: 'alpha', action: 'violation', resource: 'memory-exceeded', result: 'killed', code: 'LM_RESOURCE_EXCEEDED', reason: 'memory in use reached 60%' },
      { who: 'alpha', action: 'violation', resource: 'oom-kill', result: 'enforced', code: 'LM_RESOURCE_VIOLATION', reason: 'memory in use reached 60%' },
    ]);
    expect(emitted.map(([t]) => t)).toEqual([`${VIOLATION_TOPIC}.alpha`, `${VIOLATION_TOPIC}.alpha`]);
    // A plugin crossing and re-crossing on purpose: every one counted, a few sent, the audit trail aggregated.
    for (let i = 0; i < 500; i++) router.route(violation({ kind: 'pids-limit', action: 'alert' }));
    expect(emitted.length).toBeLessThanOrEqual(2 + 20);
    expect(audit.filter((e) => e.resource === 'pids-limit')).toHaveLength(1);
    router.close();
    expect(audit.filter((e) => e.resource === 'pids-limit').at(-1)?.count).toBe(499);
    expect(await metrics.text()).toContain('logomesh_violations_total{plugin="alpha",kind="pids-limit",action="alert"} 500');
  });
});

describe('a live limit change is checked before the engine is asked', () => {
  it("refuses unknown names, Object's own included, and values out of bounds, naming the field", () => {
    expect(() => checkLimitChange(JSON.parse('{"__proto__": 64}') as LimitChange)).toThrow(/unknown limit '__proto__'/);
    expect(() => checkLimitChange({ constructor: 64 } as unknown as LimitChange)).toThrow(/unknown limit 'constructor'/);
    expect(() => checkLimitChange({ memoryMB: 8 })).toThrow(/memoryMB: expected an integer from 16 to 65536, found 8/);
    expect(() => checkLimitChange({ cpuPercent: 12.5 })).toThrow(/cpuPercent: expected an integer/);
    expect(() => checkLimitChange({})).toThrow(/names no limit/);
    expect(() => checkLimitChange({ memoryMB: 64, cpuPercent: 50, processes: 32 })).not.toThrow();
  });
});

describe('logomesh limit arguments', () => {
  it('memory in MB (m, g), cpu in percent, pids; anything else is a usage error naming it', () => {
    expect(parseLimits(['memory=128', 'cpu=50%', 'pids=64'])).toEqual({ memoryMB: 128, cpuPercent: 50, processes: 64 });
    expect(parseLimits(['memory=1g'])).toEqual({ memoryMB: 1024 });
    expect(parseLimits(['memory=256M'])).toEqual({ memoryMB: 256 });
    expect(() => parseLimits([])).toThrow(/at least one of memory/);
    expect(() => parseLimits(['mem=1'])).toThrow(/'mem=1' is not a limit/);
    expect(() => parseLimits(['memory=1t'])).toThrow(/memory=1t: expected megabytes/);
    expect(() => parseLimits(['memory=1.5'])).toThrow(/expected a whole number/);
    expect(() => parseLimits(['cpu=1', 'cpu=2'])).toThrow(/cpu is given twice/);
  });
});

describe('live limits and the health check in the container spec', () => {
  const folders = new PluginFolders();
  afterAll(() => folders.removeAll());
  const loaded = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': dedent('id: lim\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\nresources: { maxMemoryMB: 48, maxCpuPercent: 50, maxProcesses: 16 }\n') }));
  const spec = (l = loaded, extra = {}) => containerSpec({ loaded: l, runtime: runtimeImage('python'), instance: 'unit', hubSocketDir: '/run/lm/sockets/lim', ...extra });

  it("a live change is the next container's limits; the manifest's hash stays", () => {
    const next = withLiveLimits(loaded, { memoryMB: 128, processes: 32 });
    expect(next.manifest.resources).toMatchObject({ maxMemoryMB: 128, maxCpuPercent: 50, maxProcesses: 32 });
    expect(next.hash).toBe(loaded.hash);
    expect(spec(next).HostConfig).toMatchObject({ Memory: 128 << 20, MemorySwap: 128 << 20, PidsLimit: 32 });
    expect(withLiveLimits(loaded, undefined)).toBe(loaded);
  });

  it("the health check's interval: 120 s for few containers, longer as they grow so the engine's execs stay at most one per 2 s host-wide", () => {
    expect(healthCheckInterval(0)).toBe(HEALTH_INTERVAL_MS);
    expect(healthCheckInterval(1)).toBe(120_000);
    expect(healthCheckInterval(60)).toBe(120_000);
    expect(healthCheckInterval(61)).toBe(122_000);
    expect(healthCheckInterval(200)).toBe(400_000);
    for (const n of [1, 59, 60, 61, 200, 1000]) expect(n / (healthCheckInterval(n) / 1000)).toBeLessThanOrEqual(1000 / HEALTH_EXEC_SPACING_MS);
  });

  it('the health check: lm-health mounted read-only, run by the engine with the report in the hub socket folder', () => {
    const s = spec(loaded, { healthCheck: { binary: '/cache/lm-health', intervalMs: 30_000, maxAgeSeconds: 60, startPeriodMs: 15_000 } });
    expect(s.Healthcheck).toEqual({ Test: ['CMD', '/run/logomesh-health', '/run/logomesh/health', '60'], Interval: 30e9, Timeout: 5e9, Retries: 2, StartPeriod: 15e9 });
    expect(s.HostConfig?.Mounts).toContainEqual({ Type: 'bind', Source: '/cache/lm-health', Target: '/run/logomesh-health', ReadOnly: true });
    // No hub (logomesh run), no report to read: no health check.
    const run = containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'unit', healthCheck: { binary: '/cache/lm-health', intervalMs: 1, maxAgeSeconds: 1, startPeriodMs: 1 } });
    expect(run.Healthcheck).toBeUndefined();
    expect(spec().Healthcheck).toBeUndefined();
  });
});

describe('a controller without the rights the monitor needs', () => {
  it('logs LM_MONITOR_UNAVAILABLE once, runs without a monitor, and answers usage, stats and limits with the code', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const monitoring = new Monitoring({
      docker: {} as Docker,
      log,
      audit: () => undefined,
      emit: () => undefined,
      policy: () => NO_POLICY,
      records: () => [],
      connections: () => undefined,
      options: { cgwatch: false },
      startTimeoutMs: 15_000,
      uid: 1000,
    });
    await monitoring.prepare();
    await monitoring.prepare();
    expect(monitoring.active).toBe(false);
    expect(lines.filter((l) => l.code === 'LM_MONITOR_UNAVAILABLE').map((l) => l.msg)).toEqual([expect.stringContaining('the controller is not root')]);
    expect(() => monitoring.usage('any')).toThrow(expect.objectContaining({ code: 'LM_MONITOR_UNAVAILABLE' }));
    expect(() => monitoring.stats()).toThrow(expect.objectContaining({ code: 'LM_MONITOR_UNAVAILABLE' }));
    // Without the helper there is no health check program either.
    expect(monitoring.healthCheck({ loaded: { manifest: { health: { intervalMs: 5000 } } } } as never)).toBeUndefined();
    await monitoring.close();
  });
});
