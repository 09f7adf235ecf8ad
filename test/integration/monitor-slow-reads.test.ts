import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { ResourceMonitor, ResourceViolation } from '../../src/monitor/index.js';
import { PluginWatch } from '../../src/monitor/plugin-watch.js';
import { startMonitor, startProbe, violations, watchProbe, type Probe } from './monitor-support.js';
import { sleep } from './support.js';

/**
 * The slow /proc reads (open files, /tmp) paced host-wide (slow-reads.ts): with the bound
 * in force, each plugin is read less often, and a full /tmp or a process at its open-file
 * limit is still reported, within the longer interval. Three containers at one read a
 * second: each every 3 s (the test's 200 ms base would read each 5 times a second).
 */
describe('resource monitor: slow reads paced host-wide, detection kept', () => {
  const INTERVAL_MS = 3000;
  let monitor: ResourceMonitor;
  let seen: ResourceViolation[];
  let fd: Probe;
  let tmp: Probe;
  beforeAll(async () => {
    ({ monitor, seen } = await startMonitor({ slowReadsPerSecond: 1 }));
    fd = await startProbe('paced-fd', { fileHandles: 32 });
    tmp = await startProbe('paced-tmp', { tmpMB: 2 });
    for (const p of [await startProbe('paced-idle'), fd, tmp]) await watchProbe(monitor, p);
  });
  const of = (plugin: string, kind: string) => (v: ResourceViolation) => v.plugin === plugin && v.kind === kind;

  it('reads no more than the bound a second across the watches', async () => {
    const slow = vi.spyOn(PluginWatch.prototype, 'slowTick');
    try {
      await sleep(4000);
      // One a second (a turn may carry a fraction over): 3-5 in 4 s, not the 60 of 5 a second each.
      expect(slow.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(slow.mock.calls.length).toBeLessThanOrEqual(5);
      expect(new Set(slow.mock.contexts.map((w) => (w as PluginWatch).pluginId)).size).toBe(3);
    } finally {
      slow.mockRestore();
    }
  });

  it('still reports a process at its open-file limit and a full /tmp, within the longer interval', async () => {
    const t0 = Date.now();
    await fd.pythonDetached("import time\nfs = []\ntry:\n    while True: fs.append(open('/dev/null'))\nexcept OSError:\n    pass\ntime.sleep(30)");
    await tmp.pythonDetached("import time\nf = open('/tmp/fill', 'wb')\ntry:\n    while True: f.write(b'x' * 4096); f.flush()\nexcept OSError as e:\n    print('full', e.errno)\ntime.sleep(30)");
    const files = await violations(seen, of('paced-fd', 'file-handles'));
    const full = await violations(seen, of('paced-tmp', 'tmp-full'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatchObject({ action: 'none', value: 32, limit: 32, unit: 'count', source: 'poll' });
    expect(full).toHaveLength(1);
    expect(full[0]).toMatchObject({ action: 'none', limit: 2 << 20, unit: 'bytes', source: 'poll' });
    // Within an interval of the figure being reached: a generous bound for the execs' start on a busy host.
    for (const v of [files[0]!, full[0]!]) expect(v.time - t0).toBeLessThan(INTERVAL_MS + 10_000);
  });
});
