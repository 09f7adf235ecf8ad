import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { AuditThrottle } from '../../src/audit/audit-throttle.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { MAX_TALLIES, PeerTally } from '../../src/hub/peer-tally.js';
import { silentLogger } from '../../src/log.js';
import { MonitorMetrics } from '../../src/monitor/index.js';
import { hubHarness } from './support/hub-harness.js';

/**
 * The series and audit windows the hub keeps on each connection (src/hub/peer-tally.ts):
 * what the metrics and the audit trail say must be what counting each message and call by
 * its key said, whatever order the calls come in.
 */

function policy(id: string, exposes: string[], consumes: string[]): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: [], subscribes: [] };
}

type Family = { name: string; metrics: { labels?: Record<string, string>; value?: string; count?: string }[] };

async function counts(m: MonitorMetrics, name: string): Promise<Record<string, number>> {
  const families = parsePrometheusTextFormat(await m.text()) as Family[];
  const out: Record<string, number> = {};
  for (const s of families.find((f) => f.name === name)?.metrics ?? []) out[Object.values(s.labels ?? {}).join(' ')] = Number(s.value ?? s.count);
  return out;
}

describe('hub: metrics and audit windows kept on the connection', () => {
  let hub: Hub;
  let metrics: MonitorMetrics;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const { connect, sock: hubSocket } = hubHarness('lm-hub-tally-', async (sock) => {
    metrics = new MonitorMetrics();
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 't', metrics: metrics.hubMetrics, audit: (e) => void audit.push(e) });
    await hub.attachPlugin(policy('echo', ['a', 'b'], []), sock('echo'));
    await hub.attachPlugin(policy('caller', [], ['echo.a', 'echo.b']), sock('caller'));
    return hub;
  });

  it('count every call and message as a key a call did, in any order of methods and outcomes', async () => {
    const echo = await connect('echo', ['a', 'b']);
    echo.serve((m) => m.data);
    const caller = await connect('caller');
    // Runs of one method, alternations, a refused method between them, and calls in flight at once.
    const order = ['a', 'a', 'a', 'b', 'a', 'b', 'b', 'secret', 'a', 'secret', 'secret', 'b'];
    for (const method of order) await caller.reply(caller.send({ type: 'request', to: ['echo'], method, data: 1 }));
    await Promise.all(Array.from({ length: 20 }, (_, i) => caller.reply(caller.send({ type: 'request', to: ['echo'], method: i % 3 ? 'a' : 'b', data: i }))));
    expect(await hub.call('echo', 'a', 5)).toBe(5);
    expect(await counts(metrics, 'logomesh_hub_calls_total')).toEqual({
      'caller echo a ok': 5 + 13,
      'caller echo b ok': 4 + 7,
      'caller echo secret LM_PERMISSION_DENIED': 3,
      'host echo a ok': 1,
    });
    const histogram = Object.fromEntries(metrics.callSnapshot().map((s) => [`${s.caller} ${s.target} ${s.method}`, [s.count, s.buckets.reduce((a, b) => a + b, 0), s.errors]]));
    expect(histogram).toEqual({ 'caller echo a': [18, 18, 0], 'caller echo b': [11, 11, 0], 'caller echo secret': [3, 3, 3], 'host echo a': [1, 1, 0] });
    const messages = await counts(metrics, 'logomesh_hub_messages_total');
    // Every request that passed the intake (the refused ones stop before they count), every answer of the echo, the host's call.
    expect(messages).toEqual({ 'request caller': 29, 'response echo': 30, 'request host': 1 });
  });

  it('write the same audit lines: the first allowed call at once, its repeats as one count, a new window after one is written', async () => {
    const echo = await connect('echo', ['a', 'b']);
    echo.serve((m) => m.data);
    const caller = await connect('caller');
    const call = (method: string) => caller.reply(caller.send({ type: 'request', to: ['echo'], method, data: 1 }));
    for (let i = 0; i < 10; i++) await call('a');
    await call('b');
    await call('a');
    const allowed = () => audit.filter((e) => e.action === 'call' && e.result === 'allowed').map((e) => [e.resource, e.count ?? 1]);
    expect(allowed()).toEqual([
      ['echo.a', 1],
      ['echo.b', 1],
    ]);
    hub.flushAudit();
    expect(allowed()).toEqual([
      ['echo.a', 1],
      ['echo.b', 1],
      ['echo.a', 10],
    ]);
    // The window the connection kept was written: the next call opens a new one, written at once.
    for (let i = 0; i < 3; i++) await call('a');
    hub.flushAudit();
    expect(allowed().slice(3)).toEqual([
      ['echo.a', 1],
      ['echo.a', 2],
    ]);
  });

  it("count and audit the host's calls spread over targets in turn as one by one", async () => {
    await hub.attachPlugin(policy('echo2', ['a'], []), hubSocket('echo2'));
    const echo = await connect('echo', ['a', 'b']);
    echo.serve((m) => m.data);
    const echo2 = await connect('echo2', ['a']);
    echo2.serve((m) => m.data);
    for (let i = 0; i < 6; i++) expect(await hub.call(i % 2 ? 'echo2' : 'echo', 'a', i)).toBe(i);
    hub.flushAudit();
    expect(await counts(metrics, 'logomesh_hub_calls_total')).toMatchObject({ 'host echo a ok': 3, 'host echo2 a ok': 3 });
    const calls = audit.filter((e) => e.action === 'call' && e.who === 'host');
    const total = (resource: string) => calls.filter((e) => e.resource === resource).reduce((n, e) => n + (e.count ?? 1), 0);
    expect([total('echo.a'), total('echo2.a')]).toEqual([3, 3]);
  });
});

describe('the audit throttle: a window held by its caller', () => {
  it('counts a repeat into an open window, refuses a written one, and hands out no grouped window', () => {
    const out: Omit<AuditEntry, 'time'>[] = [];
    const t = new AuditThrottle((e) => out.push(e), { windowMs: 60_000, maxKeys: 1 });
    const entry = { who: 'p', action: 'call', resource: 'x.a', result: 'allowed' } as const;
    const w = t.record(entry)!;
    expect(t.repeat(w)).toBe(true);
    expect(t.record(entry)).toBe(w);
    // Past maxKeys a decision goes to its group's window: not handed out, so a later record finds its own.
    expect(t.record({ ...entry, resource: 'x.b' })).toBeUndefined();
    t.flush();
    expect(t.repeat(w)).toBe(false);
    expect(out.map((e) => [e.resource, e.count ?? 1])).toEqual([
      ['x.a', 1],
      ['*', 1],
      ['x.a', 2],
    ]);
    t.close();
  });

  it('keeps the tally of each target a caller spreads its calls over, and at most MAX_TALLIES of them', () => {
    const t = new PeerTally();
    const first = Array.from({ length: 200 }, (_, i) => t.callTo(`p${i}`, 'echo'));
    // Round robin: each target's tally found again (the same object, with its series, window and heads), none built.
    for (let round = 0; round < 3; round++) for (let i = 0; i < 200; i++) expect(t.callTo(`p${i}`, 'echo')).toBe(first[i]);
    expect(t.callTo('p7', 'other')).not.toBe(first[7]);
    expect(first[7]!.resource).toBe('p7.echo');
    expect(t.size).toBe(201);
    // A caller of ever new methods cannot grow it past the bound.
    for (let i = 0; i < 5 * MAX_TALLIES; i++) {
      t.callTo('p1', `m${i}`);
      expect(t.size).toBeLessThanOrEqual(MAX_TALLIES);
    }
  });

});
