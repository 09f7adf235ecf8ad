import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../../src/audit/audit-log.js';
import { openEndpoints, type Endpoints } from '../../src/control/endpoints.js';
import { Controller } from '../../src/controller/controller.js';
import { reportHealth } from '../../src/controller/health-report.js';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { VIOLATION_TOPIC } from '../../src/controller/violation-routing.js';
import { silentLogger } from '../../src/log.js';
import { cgroupDirsOf } from '../../src/monitor/cgroups.js';
import type { ResourceViolation } from '../../src/monitor/index.js';
import { loadPolicy } from '../../src/policy/policy.js';
import { docker, instance, REPO, runCli, sleep, tempDir } from './support.js';

/**
 * The resource monitor under a real Controller (issue 16): violations caused for real in
 * plugin containers reach the audit trail, the host and a permitted plugin, once each; a
 * kill rule kills and the restart policy applies; limits change live without a restart;
 * the metrics endpoint parses; the Docker health check shows the hub's view.
 */

const PROBE = path.join(REPO, 'test', 'fixtures', 'controller', 'resource-probe.py');
const METHODS = '[hold, free, oom_child, fork_until_refused, heard_events]';

function plugin(root: string, id: string, manifest: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(PROBE, path.join(dir, 'main.py'));
  writeFileSync(path.join(dir, 'plugin.yaml'), [`id: ${id}`, 'version: 1.0.0', 'runtime: python', 'entrypoint: main.py', ...manifest].join('\n'));
}

/** Wait (up to `ms`) until `fn` gives something truthy. */
async function until<T>(fn: () => T | Promise<T>, ms = 30_000, what = 'the condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

describe('resource monitoring under a real controller', () => {
  let host: Controller;
  let home: Home;
  let endpoints: Endpoints;
  const heard: { v: ResourceViolation; from: string; topic: string }[] = [];
  const of = (plugin: string, kind: string) => heard.filter((h) => h.v.plugin === plugin && h.v.kind === kind);

  beforeAll(async () => {
    const root = tempDir('lm-monitor-plugins-');
    const base = ['restart: { policy: on-failure, maxRetries: 3, backoffMs: 100 }', 'coordination:', `  exposesMethods: ${METHODS}`];
    plugin(root, 'oomer', ['resources: { maxMemoryMB: 64, maxCpuPercent: 50 }', ...base]);
    plugin(root, 'forker', ['resources: { maxMemoryMB: 64, maxCpuPercent: 50, maxProcesses: 16 }', ...base]);
    plugin(root, 'alerter', ['resources: { maxMemoryMB: 64, maxCpuPercent: 50 }', 'monitoring: { alerts: { memoryPercent: 60, hysteresisPercent: 10 } }', ...base]);
    plugin(root, 'killme', ['resources: { maxMemoryMB: 96, maxCpuPercent: 50 }', 'monitoring: { killOnExceed: { memory: { percent: 50, forMs: 500 } } }', ...base]);
    plugin(root, 'limited', ['resources: { maxMemoryMB: 48, maxCpuPercent: 50, maxProcesses: 16 }', ...base]);
    // Its own health pings are rare, so that the test's report below is not overwritten meanwhile.
    plugin(root, 'watcher', ['resources: { maxMemoryMB: 64, maxCpuPercent: 50 }', 'health: { intervalMs: 600000 }', ...base, `  subscribes: ['${VIOLATION_TOPIC}.*']`]);
    const policyFile = path.join(tempDir('lm-monitor-policy-'), 'policy.yaml');
    writeFileSync(policyFile, 'capabilities:\n  maxMemoryMB: 256\n');
    home = resolveHome({ LOGOMESH_HOME: tempDir('lm-monitor-home-'), LOGOMESH_INSTANCE: `${instance()}-monitor` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, startTimeoutMs: 60_000, policy: loadPolicy(policyFile), monitoring: { pollMs: 200, healthCheckMs: 1_000 } });
    host.on(`${VIOLATION_TOPIC}.*`, (data, meta) => heard.push({ v: data as ResourceViolation, from: meta.from, topic: meta.topic }));
    host.loadDirectory(root);
    await host.startAll();
    endpoints = await openEndpoints(host, silentLogger, () => undefined, { LOGOMESH_METRICS: '127.0.0.1:0' });
  }, 180_000);

  afterAll(async () => {
    await endpoints?.close();
    await host?.close();
  }, 60_000);

  it('an OOM kill: reported once, to the host, the permitted plugin and the audit trail', async () => {
    expect(await host.call('oomer', 'oom_child', {}, 60_000)).toEqual({ signal: 9 });
    await until(() => of('oomer', 'oom-kill').length > 0, 15_000, 'the oom-kill event');
    await sleep(1500); // a second report of the same kill would come within a few polls
    expect(of('oomer', 'oom-kill')).toHaveLength(1);
    const [h] = of('oomer', 'oom-kill');
    expect(h!.from).toBe('host');
    expect(h!.topic).toBe(`${VIOLATION_TOPIC}.oomer`);
    expect(h!.v).toMatchObject({ plugin: 'oomer', kind: 'oom-kill', action: 'none', limit: 64 << 20, unit: 'bytes' });
    // Only the plugin's child was killed: the plugin answers on.
    expect(host.status('oomer')).toMatchObject({ state: 'ready', restarts: 0 });
    const watcher = (await until(async () => ((await host.call('watcher', 'heard_events', {})) as { kind: string; plugin: string; sender: string }[]).filter((e) => e.plugin === 'oomer'), 10_000, 'the watcher to hear it')) as { kind: string; sender: string }[];
    expect(watcher.filter((e) => e.kind === 'oom-kill')).toEqual([{ topic: `${VIOLATION_TOPIC}.oomer`, sender: 'host', kind: 'oom-kill', plugin: 'oomer', action: 'none' }]);
    // A plugin whose manifest does not subscribe hears nothing.
    expect(await host.call('oomer', 'heard_events', {})).toEqual([]);
    const audited = readAudit(home.auditFile, { plugin: 'oomer' }).filter((e) => e.action === 'violation' && e.resource === 'oom-kill');
    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ who: 'oomer', result: 'enforced', code: 'LM_RESOURCE_VIOLATION' });
    expect(audited[0]!.reason).toMatch(/OOM killer killed 1 process/);
  });

  it('the pids limit: reported once however many forks are refused', async () => {
    const r = (await host.call('forker', 'fork_until_refused', {}, 60_000)) as { forked: number; errno: number };
    expect(r.errno).toBe(11); // EAGAIN
    await until(() => of('forker', 'pids-limit').length > 0, 15_000, 'the pids-limit event');
    await sleep(1500);
    expect(of('forker', 'pids-limit')).toHaveLength(1);
    expect(of('forker', 'pids-limit')[0]!.v).toMatchObject({ action: 'none', limit: 16, unit: 'count' });
  });

  it('a threshold alert fires once per crossing, not once per sample', async () => {
    await host.call('alerter', 'hold', { mb: 30 });
    await until(() => of('alerter', 'memory-threshold').length > 0, 15_000, 'the first alert');
    await sleep(2000); // ten polls above the threshold
    expect(of('alerter', 'memory-threshold')).toHaveLength(1);
    expect(of('alerter', 'memory-threshold')[0]!.v).toMatchObject({ action: 'alert', limit: Math.round(0.6 * (64 << 20)) });
    await host.call('alerter', 'free', {});
    await sleep(1000); // below 60 - 10 = 50%: armed again
    await host.call('alerter', 'hold', { mb: 30 });
    await until(() => of('alerter', 'memory-threshold').length > 1, 15_000, 'the second crossing');
    await sleep(1500);
    expect(of('alerter', 'memory-threshold')).toHaveLength(2);
    const audited = readAudit(home.auditFile, { plugin: 'alerter' }).filter((e) => e.action === 'violation' && e.resource === 'memory-threshold');
    expect(audited.map((e) => [e.result, e.code])).toEqual([
      ['alert', 'LM_RESOURCE_VIOLATION'],
      ['alert', 'LM_RESOURCE_VIOLATION'],
    ]);
  });

  it('kill on exceed: the monitor kills the plugin, its last error says why, and the restart policy starts it again', async () => {
    const before = host.status('killme');
    await host.call('killme', 'hold', { mb: 40 }).catch(() => undefined); // killed ~500 ms later, the answer may or may not come first
    await until(() => of('killme', 'memory-exceeded').length > 0, 15_000, 'the kill');
    const after = await until(() => {
      const s = host.status('killme');
      return s.state === 'ready' && s.containerId !== before.containerId ? s : undefined;
    }, 60_000, 'the restart');
    expect(of('killme', 'memory-exceeded')).toHaveLength(1);
    expect(of('killme', 'memory-exceeded')[0]!.v).toMatchObject({ action: 'kill', unit: 'bytes', limit: Math.round(0.5 * (96 << 20)) });
    expect(after.restarts).toBe(before.restarts + 1);
    expect(after.lastError?.code).toBe('LM_RESOURCE_EXCEEDED');
    expect(after.lastError?.message).toMatch(/killed by the resource monitor: memory in use stayed above 50% of the limit for 500 ms/);
    const audited = readAudit(home.auditFile, { plugin: 'killme' }).filter((e) => e.action === 'violation');
    expect(audited.map((e) => [e.resource, e.result, e.code])).toEqual([
      ['memory-exceeded', 'killed', 'LM_RESOURCE_EXCEEDED'],
      ['killme', 'failed', 'LM_RESOURCE_EXCEEDED'],
    ]);
    // Watched again in its new container (the watch is set up right after it is ready).
    const usage = await until(() => {
      try {
        return host.usage('killme');
      } catch {
        return undefined;
      }
    }, 10_000, 'the new container to be watched');
    expect(usage.memory.limit).toBe(96 << 20);
  });

  it('a live limit change shows in the cgroup and takes effect without a restart; audited with who; kept by a restart', async () => {
    const before = host.status('limited');
    const pid = (await (await docker()).getContainer(before.containerId!).inspect()).State.Pid;
    const dirs = cgroupDirsOf(pid);
    const read = (dir: string | undefined, file: string) => readFileSync(path.join(dir!, file), 'utf8').trim();
    expect(read(dirs.memory, 'memory.limit_in_bytes')).toBe(String(48 << 20));
    // 64 MB do not fit in 48.
    await expect(host.call('limited', 'hold', { mb: 64 }, 30_000)).rejects.toThrow();
    await until(() => host.status('limited').state === 'ready' && host.status('limited').containerId !== before.containerId, 60_000, 'the restart after the OOM');
    const current = host.status('limited');
    const changed = await host.setLimits('limited', { memoryMB: 128, cpuPercent: 25, processes: 32 }, 'operator (test)');
    expect(changed).toEqual([
      { resource: 'memoryMB', from: 48, to: 128 },
      { resource: 'cpuPercent', from: 50, to: 25 },
      { resource: 'processes', from: 16, to: 32 },
    ]);
    const now = cgroupDirsOf((await (await docker()).getContainer(current.containerId!).inspect()).State.Pid);
    expect(read(now.memory, 'memory.limit_in_bytes')).toBe(String(128 << 20));
    expect(read(now.memory, 'memory.memsw.limit_in_bytes')).toBe(String(128 << 20));
    expect(read(now.cpu, 'cpu.cfs_quota_us')).toBe('25000');
    expect(read(now.pids, 'pids.max')).toBe('32');
    expect(await host.call('limited', 'hold', { mb: 64 }, 30_000)).toBe(64);
    expect(host.status('limited')).toMatchObject({ state: 'ready', containerId: current.containerId, restarts: current.restarts });
    expect(host.usage('limited').memory.limit).toBe(128 << 20);
    const audited = readAudit(home.auditFile, { plugin: 'limited' }).filter((e) => e.action === 'limit');
    expect(audited.map((e) => [e.who, e.resource, e.result])).toEqual([
      ['operator (test)', 'limited:memoryMB', 'changed'],
      ['operator (test)', 'limited:cpuPercent', 'changed'],
      ['operator (test)', 'limited:processes', 'changed'],
    ]);
    // Beyond the schema, or the policy's ceiling: refused, nothing changed.
    await expect(host.setLimits('limited', { memoryMB: 8 })).rejects.toMatchObject({ code: 'LM_LIMIT_INVALID' });
    await expect(host.setLimits('limited', { memoryMB: 512 })).rejects.toMatchObject({ code: 'LM_POLICY_DENIED' });
    expect(read(now.memory, 'memory.limit_in_bytes')).toBe(String(128 << 20));
    // A restart keeps the operator's limits.
    await host.restart('limited');
    const again = cgroupDirsOf((await (await docker()).getContainer(host.status('limited').containerId!).inspect()).State.Pid);
    expect(read(again.memory, 'memory.limit_in_bytes')).toBe(String(128 << 20));
  });

  it('the metrics endpoint parses as Prometheus text format, with the documented series', async () => {
    const text = await (await fetch(endpoints.metricsUrl!)).text();
    const families = new Map((parsePrometheusTextFormat(text) as { name: string; metrics: { labels?: Record<string, string>; value?: string }[] }[]).map((f) => [f.name, f]));
    for (const name of ['logomesh_plugin_memory_used_bytes', 'logomesh_plugin_memory_limit_bytes', 'logomesh_plugin_cpu_percent', 'logomesh_plugin_file_handles', 'logomesh_plugin_restarts', 'logomesh_plugin_state', 'logomesh_violations_total', 'logomesh_hub_calls_total', 'logomesh_hub_call_duration_seconds', 'logomesh_hub_messages_total']) {
      expect(families.has(name), name).toBe(true);
    }
    const used = families.get('logomesh_plugin_memory_used_bytes')!.metrics.find((m) => m.labels?.plugin === 'watcher');
    expect(Number(used?.value)).toBeGreaterThan(1 << 20);
    expect(families.get('logomesh_violations_total')!.metrics).toContainEqual({ labels: { plugin: 'oomer', kind: 'oom-kill', action: 'none' }, value: '1' });
    expect(families.get('logomesh_plugin_state')!.metrics).toContainEqual({ labels: { plugin: 'watcher', state: 'ready' }, value: '1' });
    const calls = families.get('logomesh_hub_calls_total')!.metrics.find((m) => m.labels?.caller === 'host' && m.labels.target === 'alerter' && m.labels.method === 'hold' && m.labels.outcome === 'ok');
    expect(Number(calls?.value)).toBe(2);
    expect(text).toMatch(/logomesh_hub_call_duration_seconds_count\{caller="host",target="alerter",method="hold"\} 2/);
  });

  it('logomesh stats and logomesh limit reach the running controller', async () => {
    const env = { LOGOMESH_HOME: home.dir };
    const stats = await runCli(['stats', '--no-stream', '--json'], { env, timeoutMs: 30_000 });
    expect(stats.code, stats.stderr).toBe(0);
    const rows = JSON.parse(stats.stdout) as { pluginId: string; memory: { limit: number }; processes: { current: number; limit: number } }[];
    expect(rows.map((r) => r.pluginId)).toEqual(['alerter', 'forker', 'killme', 'limited', 'oomer', 'watcher']);
    expect(rows.find((r) => r.pluginId === 'forker')!.processes.limit).toBe(16);
    const table = await runCli(['stats', '--no-stream'], { env, timeoutMs: 30_000 });
    expect(table.stdout.split('\n')[0]).toMatch(/^PLUGIN\s+CPU %\s+CPU LIMIT\s+MEM USAGE \/ LIMIT/);
    const limit = await runCli(['limit', 'watcher', 'memory=80', 'pids=40'], { env, timeoutMs: 30_000 });
    expect(limit.code, limit.stderr).toBe(0);
    expect(limit.stdout).toContain('watcher: memoryMB 64 -> 80 (live, no restart)');
    const by = readAudit(home.auditFile, { plugin: 'watcher' }).filter((e) => e.action === 'limit');
    expect(by[0]?.who).toMatch(/^operator \(.+ \(uid \d+\), logomesh limit\)$/);
    const bad = await runCli(['limit', 'watcher', 'memory=lots'], { env, timeoutMs: 30_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('LM_USAGE: memory=lots: expected megabytes');
  });

  it("the Docker health check shows the hub's view, and the plugin cannot write it", async () => {
    const engine = await docker();
    const id = host.status('watcher').containerId!;
    const health = async () => (await engine.getContainer(id).inspect()).State.Health as { Status: string; Log: { ExitCode: number; Output: string }[] } | undefined;
    const healthy = await until(async () => ((await health())?.Status === 'healthy' ? health() : undefined), 30_000, 'healthy');
    expect(healthy.Log.at(-1)?.Output).toMatch(/^ok: /);
    // The hub's view changes: the engine follows.
    reportHealth(home, 'watcher', 'unhealthy: a test says so');
    const unhealthy = await until(async () => ((await health())?.Status === 'unhealthy' ? health() : undefined), 30_000, 'unhealthy');
    expect(unhealthy.Log.at(-1)).toMatchObject({ ExitCode: 1, Output: expect.stringContaining('unhealthy: a test says so') });
    reportHealth(home, 'watcher', 'ok: back');
    await until(async () => (await health())?.Status === 'healthy', 30_000, 'healthy again');
    // The report is the controller's: the plugin sees it read-only.
    const exec = await engine.getContainer(id).exec({ Cmd: ['python3', '-c', "open('/run/logomesh/health', 'w').write('ok: forged')"], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out: Buffer[] = [];
    stream.on('data', (c: Buffer) => out.push(c));
    await new Promise((r) => stream.on('end', r));
    expect((await exec.inspect()).ExitCode).toBe(1);
    expect(Buffer.concat(out).toString('latin1')).toMatch(/Read-only file system/);
  });
});
