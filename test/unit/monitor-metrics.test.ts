import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { MonitorMetrics } from '../../src/monitor/metrics.js';
import { metricsAddress, startMetricsEndpoint } from '../../src/monitor/metrics-server.js';
import { formatBytes, statsJson, statsTable } from '../../src/monitor/stats-table.js';
import type { ResourceUsage, ResourceViolation } from '../../src/monitor/types.js';

interface Family {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string }[];
}

const usage = (pluginId: string, over: Partial<ResourceUsage> = {}): ResourceUsage => ({
  pluginId,
  timestamp: 1,
  memory: { used: 20 << 20, peak: 30 << 20, limit: 64 << 20 },
  cpu: { percent: 12.5, limit: 50 },
  io: { fileHandles: 7, networkConnections: 1, diskReadBytes: 4096, diskWriteBytes: 0 },
  violations: [],
  ...over,
});

const violation: ResourceViolation = { kind: 'oom-kill', plugin: 'hog', value: 1, limit: 1, unit: 'bytes', time: 1, action: 'none', source: 'notification', detail: '' };

describe('Prometheus metrics', () => {
  const metrics = new MonitorMetrics({
    usages: () => [usage('analyzer'), usage('hog')],
    states: () => [
      { plugin: 'analyzer', state: 'ready', restarts: 0 },
      { plugin: 'hog', state: 'restarting', restarts: 2 },
    ],
  });
  metrics.recordViolation(violation);
  metrics.recordViolation(violation);
  metrics.observeCall('thoughts', 'analyzer', 'analyze_results', 0.0004, 'ok');
  metrics.observeCall('host', 'analyzer', 'analyze_results', 2, 'LM_TIMEOUT');
  metrics.countMessage('request', 'thoughts');

  it('writes Prometheus text format that a parser reads, with every documented series', async () => {
    const families = parsePrometheusTextFormat(await metrics.text()) as Family[];
    const byName = new Map(families.map((f) => [f.name, f]));
    expect([...byName.keys()].sort()).toEqual(
      [
        'logomesh_hub_call_duration_seconds',
        'logomesh_hub_calls_total',
        'logomesh_hub_messages_total',
        'logomesh_plugin_cpu_limit_percent',
        'logomesh_plugin_cpu_percent',
        'logomesh_plugin_disk_read_bytes',
        'logomesh_plugin_disk_write_bytes',
        'logomesh_plugin_file_handles',
        'logomesh_plugin_memory_limit_bytes',
        'logomesh_plugin_memory_peak_bytes',
        'logomesh_plugin_memory_used_bytes',
        'logomesh_plugin_network_connections',
        'logomesh_plugin_restarts',
        'logomesh_plugin_state',
        'logomesh_violations_total',
      ].sort(),
    );
    const mem = byName.get('logomesh_plugin_memory_used_bytes')!;
    expect(mem.type).toBe('GAUGE');
    expect(mem.metrics).toContainEqual({ labels: { plugin: 'hog' }, value: String(20 << 20) });
    expect(byName.get('logomesh_violations_total')!.metrics).toEqual([{ labels: { plugin: 'hog', kind: 'oom-kill', action: 'none' }, value: '2' }]);
    const state = byName.get('logomesh_plugin_state')!.metrics.filter((m) => m.value === '1');
    expect(state.map((m) => m.labels)).toEqual([
      { plugin: 'analyzer', state: 'ready' },
      { plugin: 'hog', state: 'restarting' },
    ]);
    expect(byName.get('logomesh_hub_call_duration_seconds')!.type).toBe('HISTOGRAM');
    // The parser folds a histogram's label sets together: its series are checked in the text.
    const text = await metrics.text();
    const pair = 'caller="thoughts",target="analyzer",method="analyze_results"';
    expect(text).toContain(`logomesh_hub_call_duration_seconds_bucket{le="0.0005",${pair}} 1`);
    expect(text).toContain(`logomesh_hub_call_duration_seconds_bucket{le="0.00025",${pair}} 0`);
    expect(text).toContain(`logomesh_hub_call_duration_seconds_count{${pair}} 1`);
    expect(text).toContain(`logomesh_hub_call_duration_seconds_sum{${pair}} 0.0004`);
    expect(byName.get('logomesh_hub_calls_total')!.metrics).toContainEqual({ labels: { caller: 'host', target: 'analyzer', method: 'analyze_results', outcome: 'LM_TIMEOUT' }, value: '1' });
  });

  it('drops the series of a plugin that is no longer watched', async () => {
    let list = [usage('a'), usage('b')];
    const m = new MonitorMetrics({ usages: () => list });
    expect(await m.text()).toContain('plugin="b"');
    list = [usage('a')];
    expect(await m.text()).not.toContain('plugin="b"');
  });

  it('serves GET /metrics on loopback and nothing else', async () => {
    const endpoint = await startMetricsEndpoint(metrics, { host: '127.0.0.1', port: 0 }, silentLogger);
    try {
      const res = await fetch(endpoint.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      expect(parsePrometheusTextFormat(await res.text()).length).toBeGreaterThan(10);
      expect((await fetch(endpoint.url.replace('/metrics', '/'))).status).toBe(404);
      expect((await fetch(endpoint.url, { method: 'POST' })).status).toBe(405);
    } finally {
      await endpoint.close();
      await endpoint.close();
    }
  });

  it('is off unless LOGOMESH_METRICS names an address, and refuses non-loopback without LOGOMESH_METRICS_PUBLIC=1', () => {
    expect(metricsAddress({})).toBeUndefined();
    expect(metricsAddress({ LOGOMESH_METRICS: '9464' })).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(metricsAddress({ LOGOMESH_METRICS: '[::1]:9464' })).toEqual({ host: '::1', port: 9464 });
    expect(() => metricsAddress({ LOGOMESH_METRICS: '0.0.0.0:9464' })).toThrow(/not a loopback address; set LOGOMESH_METRICS_PUBLIC=1/);
    expect(metricsAddress({ LOGOMESH_METRICS: '0.0.0.0:9464', LOGOMESH_METRICS_PUBLIC: '1' })).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(() => metricsAddress({ LOGOMESH_METRICS: 'example.com:80' })).toThrow(/LOGOMESH_METRICS=example.com:80: expected \[host:\]port/);
    expect(() => metricsAddress({ LOGOMESH_METRICS: '99999' })).toThrow(/LM_METRICS_ENDPOINT|expected/);
  });
});

describe('logomesh stats rendering', () => {
  const rows = [
    { usage: usage('thoughts', { violations: [violation, { ...violation, kind: 'pids-limit' }] }), processes: { current: 3, limit: 64 } },
    { usage: usage('analyzer', { cpu: { percent: 0, limit: 25 } }) },
  ];

  it('draws a table like docker stats, sorted by plugin', () => {
    expect(statsTable(rows)).toBe(
      [
        'PLUGIN    CPU %   CPU LIMIT  MEM USAGE / LIMIT  MEM %   PEAK     PIDS  FILES  CONNS  DISK READ / WRITE  VIOLATIONS',
        'analyzer  0.00%   25.00%     20.0MiB / 64.0MiB  31.25%  30.0MiB  -     7      1      4.0KiB / 0B        0',
        'thoughts  12.50%  50.00%     20.0MiB / 64.0MiB  31.25%  30.0MiB  3/64  7      1      4.0KiB / 0B        2 (oom-kill, pids-limit)',
      ].join('\n'),
    );
  });

  it('gives --json as the spec ResourceUsage of each plugin', () => {
    const parsed = JSON.parse(statsJson(rows)) as (ResourceUsage & { processes?: unknown })[];
    expect(parsed.map((u) => u.pluginId)).toEqual(['analyzer', 'thoughts']);
    expect(parsed[1]).toMatchObject({ memory: { used: 20 << 20 }, io: { fileHandles: 7 }, processes: { current: 3, limit: 64 } });
  });

  it('formats bytes 1024-based', () => {
    expect([0, 1023, 1024, 1536, 200 << 20, 3 * 2 ** 30].map(formatBytes)).toEqual(['0B', '1023B', '1.0KiB', '1.5KiB', '200MiB', '3.0GiB']);
  });
});
