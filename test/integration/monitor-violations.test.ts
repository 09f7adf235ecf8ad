import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ResourceMonitor, ResourceViolation } from '../../src/monitor/index.js';
import { startMonitor, startProbe, violations, watchProbe } from './monitor-support.js';
import { sleep } from './support.js';

/**
 * Each violation kind, caused for real in a container with a plugin's limits and seen by
 * the monitor through the kernel: reported once, with the right kind and plugin.
 */
describe('resource monitor: violations from the kernel, each reported once', () => {
  let monitor: ResourceMonitor;
  let seen: ResourceViolation[];
  /** What the egress proxy would report: open connections by plugin. */
  const open = new Map<string, number>();
  beforeAll(async () => {
    ({ monitor, seen } = await startMonitor({ connections: (plugin) => open.get(plugin) }));
  });
  const of = (plugin: string, kind: string) => (v: ResourceViolation) => v.plugin === plugin && v.kind === kind;

  it('an OOM kill', async () => {
    const p = await startProbe('oom-probe', { memoryMB: 48 });
    await watchProbe(monitor, p);
    const r = await p.python("b = []\nwhile True: b.append(b'x' * (1 << 20))");
    expect(r.exitCode).toBe(137);
    const found = await violations(seen, of('oom-probe', 'oom-kill'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ kind: 'oom-kill', plugin: 'oom-probe', limit: 48 << 20, unit: 'bytes', action: 'none', source: 'notification' });
    expect(found[0]!.value).toBeGreaterThan(40 << 20);
  });

  it('the pids limit', async () => {
    const p = await startProbe('pids-probe', { processes: 16 });
    await watchProbe(monitor, p);
    const r = await p.python(
      'import os, time\nkids = []\ntry:\n    while True:\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(3); os._exit(0)\n        kids.append(pid)\nexcept OSError as e:\n    print("refused", e.errno, len(kids))\nfor k in kids: os.waitpid(k, 0)',
    );
    expect(r.output).toContain('refused 11');
    const found = await violations(seen, of('pids-probe', 'pids-limit'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ plugin: 'pids-probe', limit: 16, unit: 'count', action: 'none', source: 'notification' });
  });

  it('a memory threshold crossing, once per crossing (hysteresis)', async () => {
    const p = await startProbe('mem-probe', { memoryMB: 64 });
    await watchProbe(monitor, p, { alerts: { memoryPercent: 50, hysteresisPercent: 20 } });
    // Up past 32 MB, held for many polls; down below 50-20 = 30% (19 MB); up again.
    await p.python("import time\nb = b'x' * (40 << 20)\ntime.sleep(1.5)");
    await sleep(500);
    const first = await violations(seen, of('mem-probe', 'memory-threshold'));
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ action: 'alert', limit: 32 << 20, unit: 'bytes' });
    expect(first[0]!.value).toBeGreaterThanOrEqual(32 << 20);
    await p.python("import time\nb = b'x' * (40 << 20)\ntime.sleep(0.5)");
    const both = await violations(seen, of('mem-probe', 'memory-threshold'), 2);
    expect(both).toHaveLength(2);
  });

  it('CPU throttled beyond the policy for its window', async () => {
    const p = await startProbe('cpu-probe', { cpuPercent: 10 });
    await watchProbe(monitor, p, { alerts: { hysteresisPercent: 10, throttling: { percent: 50, windowMs: 1000 } } });
    await p.python('import time\nend = time.time() + 3\nwhile time.time() < end: pass');
    const found = await violations(seen, of('cpu-probe', 'cpu-throttled'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'alert', limit: 50, unit: 'percent', source: 'poll' });
    expect(found[0]!.value).toBeGreaterThan(50);
  });

  it('a pressure (PSI) trigger', async () => {
    const p = await startProbe('psi-probe', { cpuPercent: 10 });
    await watchProbe(monitor, p, { alerts: { hysteresisPercent: 10, pressure: { cpu: 20, windowMs: 2000 } } });
    // Two busy processes under a tenth of a core: most of the time, some task waits for CPU.
    await p.python('import os, time\nos.fork()\nend = time.time() + 6\nwhile time.time() < end: pass');
    const found = await violations(seen, of('psi-probe', 'pressure'), 1, 15_000);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'alert', limit: 20, unit: 'percent', source: 'notification' });
    expect(found[0]!.detail).toContain('cpu pressure');
  });

  it('/tmp full', async () => {
    const p = await startProbe('tmp-probe', { tmpMB: 2 });
    await watchProbe(monitor, p);
    const r = await p.pythonDetached(
      "import time\nf = open('/tmp/fill', 'wb')\ntry:\n    while True: f.write(b'x' * 4096); f.flush()\nexcept OSError as e:\n    print('full', e.errno)\ntime.sleep(30)",
    );
    void r;
    const found = await violations(seen, of('tmp-probe', 'tmp-full'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'none', limit: 2 << 20, unit: 'bytes', source: 'poll' });
  });

  it('file handles exhausted', async () => {
    const p = await startProbe('fd-probe', { fileHandles: 32 });
    await watchProbe(monitor, p);
    await p.pythonDetached("import time\nfs = []\ntry:\n    while True: fs.append(open('/dev/null'))\nexcept OSError:\n    pass\ntime.sleep(30)");
    const found = await violations(seen, of('fd-probe', 'file-handles'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'none', value: 32, limit: 32, unit: 'count' });
  });

  it('kill on exceed: memory above its share for forMs kills the plugin', async () => {
    const p = await startProbe('kill-probe', { memoryMB: 64 });
    await watchProbe(monitor, p, { killOnExceed: { memory: { percent: 50, forMs: 300 } } });
    await p.pythonDetached("import time\nb = b'x' * (40 << 20)\ntime.sleep(30)");
    const found = await violations(seen, of('kill-probe', 'memory-exceeded'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'kill', limit: 32 << 20, unit: 'bytes' });
    expect(found[0]!.detail).toMatch(/killed \((cgroup\.kill|signal)\)/);
    const info = await p.container.inspect();
    expect(info.State.Running).toBe(false);
    expect(info.State.ExitCode).toBe(137);
  });

  it('the connection limit, from the egress proxy count, once per crossing', async () => {
    const p = await startProbe('conn-probe');
    await watchProbe(monitor, p, {}, { networkConnections: 4 });
    open.set('conn-probe', 4);
    await sleep(1000);
    open.set('conn-probe', 3);
    await sleep(600);
    open.set('conn-probe', 4);
    const found = await violations(seen, of('conn-probe', 'connection-limit'));
    // 4 reached, held for several polls; 3 is within the hysteresis (not below 4 - 1): one crossing.
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ action: 'none', value: 4, limit: 4, unit: 'count', source: 'poll' });
    expect(monitor.getCurrentUsage('conn-probe').io.networkConnections).toBe(4);
    open.set('conn-probe', 0);
    await sleep(600);
    open.set('conn-probe', 5);
    expect(await violations(seen, of('conn-probe', 'connection-limit'), 2)).toHaveLength(2);
  });

  it('keeps the violations in ResourceUsage.violations, and the figures from the kernel', async () => {
    const p = await startProbe('usage-probe', { memoryMB: 64 });
    await watchProbe(monitor, p);
    await p.python("b = []\nwhile True: b.append(b'x' * (1 << 20))");
    await violations(seen, of('usage-probe', 'oom-kill'));
    const u = monitor.getCurrentUsage('usage-probe');
    expect(u.violations.map((v) => v.kind)).toEqual(['oom-kill']);
    expect(u.memory.limit).toBe(64 << 20);
    const peakFile = readFileSync(`/sys/fs/cgroup/memory/docker/${p.id}/memory.max_usage_in_bytes`, 'utf8');
    expect(u.memory.peak).toBe(Number(peakFile));
  });
});
