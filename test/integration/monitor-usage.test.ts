import { readdirSync, readFileSync } from 'node:fs';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { beforeAll, describe, expect, it } from 'vitest';
import { enforceLimit, MonitorMetrics, type ResourceMonitor } from '../../src/monitor/index.js';
import { startMonitor, startProbe, watchProbe } from './monitor-support.js';
import { sleep } from './support.js';

const cg = (controller: string, id: string, file: string) => readFileSync(`/sys/fs/cgroup/${controller}/docker/${id}/${file}`, 'utf8');
const num = (text: string) => Number(text.trim());
const MiB = 1024 * 1024;

/**
 * The figures of getCurrentUsage against the kernel's own files and /proc, read right
 * after, and limits changed live. Tolerances: memory within 1 MiB (an idle process;
 * the two reads are microseconds apart), open files exact within 2, CPU within 10 points.
 */
describe('resource monitor: usage from the kernel, live limits, metrics', () => {
  let monitor: ResourceMonitor;
  beforeAll(async () => {
    ({ monitor } = await startMonitor());
  });

  it('reports memory, peak, limits and open files as the cgroup files and /proc say', async () => {
    const p = await startProbe('usage-figures', { memoryMB: 64, cpuPercent: 50 });
    await watchProbe(monitor, p);
    await p.pythonDetached("import time\nb = b'x' * (20 << 20)\nfs = [open('/dev/null') for _ in range(10)]\ntime.sleep(60)");
    await sleep(1500);
    const u = monitor.getCurrentUsage('usage-figures');
    const stat = new Map(cg('memory', p.id, 'memory.stat').split('\n').map((l) => l.split(' ') as [string, string]));
    const used = num(cg('memory', p.id, 'memory.usage_in_bytes')) - Number(stat.get('total_inactive_file'));
    expect(Math.abs(u.memory.used - used)).toBeLessThanOrEqual(MiB);
    expect(u.memory.used).toBeGreaterThan(20 * MiB);
    expect(Math.abs(u.memory.peak - num(cg('memory', p.id, 'memory.max_usage_in_bytes')))).toBeLessThanOrEqual(MiB);
    expect(u.memory.limit).toBe(num(cg('memory', p.id, 'memory.limit_in_bytes')));
    expect(u.cpu.limit).toBe((num(cg('cpu', p.id, 'cpu.cfs_quota_us')) / num(cg('cpu', p.id, 'cpu.cfs_period_us'))) * 100);
    const pids = cg('pids', p.id, 'cgroup.procs').trim().split('\n').map(Number);
    const files = pids.reduce((n, pid) => n + readdirSync(`/proc/${pid}/fd`).length, 0);
    expect(Math.abs(u.io.fileHandles - files)).toBeLessThanOrEqual(2);
    expect(u.io.fileHandles).toBeGreaterThanOrEqual(10);
    expect(u.pluginId).toBe('usage-figures');
  });

  it('reports CPU percent of one core as cpuacct.usage says, capped by the quota', async () => {
    const p = await startProbe('usage-cpu', { cpuPercent: 50 });
    await watchProbe(monitor, p);
    await p.pythonDetached('import time\nend = time.time() + 20\nwhile time.time() < end: pass');
    await sleep(1200);
    monitor.getCurrentUsage('usage-cpu');
    const t0 = performance.now();
    const c0 = num(cg('cpuacct', p.id, 'cpuacct.usage'));
    await sleep(1500);
    const u = monitor.getCurrentUsage('usage-cpu');
    const fromFile = ((num(cg('cpuacct', p.id, 'cpuacct.usage')) - c0) / ((performance.now() - t0) * 1e6)) * 100;
    // The same window within a millisecond or two on each side; the host may be busy, so not exactly 50.
    expect(Math.abs(u.cpu.percent - fromFile)).toBeLessThanOrEqual(10);
    expect(u.cpu.percent).toBeGreaterThan(10);
    expect(u.cpu.percent).toBeLessThanOrEqual(55);
  });

  it('changes memory, CPU and process limits live: in the cgroup, in effect, without a restart', async () => {
    const p = await startProbe('usage-live', { memoryMB: 48, cpuPercent: 25, processes: 16 });
    await watchProbe(monitor, p);
    const before = await p.container.inspect();
    const changed = await enforceLimit(p.container, { memoryMB: 96, cpuPercent: 50, processes: 40 });
    expect(changed).toEqual([
      { resource: 'memoryMB', from: 48, to: 96 },
      { resource: 'cpuPercent', from: 25, to: 50 },
      { resource: 'processes', from: 16, to: 40 },
    ]);
    expect(num(cg('memory', p.id, 'memory.limit_in_bytes'))).toBe(96 * MiB);
    expect(num(cg('memory', p.id, 'memory.memsw.limit_in_bytes'))).toBe(96 * MiB);
    expect(num(cg('cpu', p.id, 'cpu.cfs_quota_us'))).toBe(50_000);
    expect(num(cg('cpu', p.id, 'cpu.shares'))).toBe(512);
    expect(num(cg('pids', p.id, 'pids.max'))).toBe(40);
    // In effect: 64 MB fits now (it would have been an OOM kill at 48 MB).
    const r = await p.python("b = b'x' * (64 << 20)\nprint('held', len(b) >> 20)");
    expect(r.output).toContain('held 64');
    expect(r.exitCode).toBe(0);
    const after = await p.container.inspect();
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    expect(after.State.Pid).toBe(before.State.Pid);
    expect(after.RestartCount).toBe(0);
    // A change to the same values changes nothing.
    expect(await enforceLimit(p.container, { memoryMB: 96 })).toEqual([]);
    await monitor.setLimits('usage-live', { ...p.limits, memoryBytes: 96 * MiB });
    expect(monitor.getCurrentUsage('usage-live').memory.limit).toBe(96 * MiB);
  });

  it('refuses a live change for a container that is not running', async () => {
    const p = await startProbe('usage-stopped');
    await p.container.kill();
    await expect(enforceLimit(p.container, { memoryMB: 64 })).rejects.toMatchObject({ code: 'LM_LIMIT_INVALID' });
  });

  it('exposes the watched plugins in Prometheus text format', async () => {
    const p = await startProbe('usage-metrics', { memoryMB: 64 });
    await watchProbe(monitor, p);
    const metrics = new MonitorMetrics({ usages: () => monitor.usages() });
    monitor.on('violation', (v) => metrics.recordViolation(v));
    await p.python("b = []\nwhile True: b.append(b'x' * (1 << 20))");
    await sleep(500);
    const families = parsePrometheusTextFormat(await metrics.text());
    const series = (name: string) => families.find((f) => f.name === name)?.metrics.find((m) => m.labels?.plugin === 'usage-metrics');
    expect(series('logomesh_plugin_memory_limit_bytes')?.value).toBe(String(64 * MiB));
    expect(Number(series('logomesh_plugin_memory_peak_bytes')?.value)).toBeGreaterThan(60 * MiB);
    expect(families.find((f) => f.name === 'logomesh_violations_total')?.metrics).toContainEqual({ labels: { plugin: 'usage-metrics', kind: 'oom-kill', action: 'none' }, value: '1' });
  });
});
