import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { compileMethodSchemas } from '../../src/hub/method-schemas.js';
import type { SegmentMsg, SegmentRef } from '../../src/hub/protocol.js';
import type { SegmentBroker } from '../../src/hub/segments.js';
import { silentLogger } from '../../src/log.js';
import type { Msg } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

const SEG = 'a'.repeat(32);
const OTHER = 'b'.repeat(32);

function policy(id: string, exposes: string[], consumes: string[], extra: Partial<PluginPolicy> = {}): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: ['*'], subscribes: ['*'], ...extra };
}

/** A broker that knows one segment, SEG, held by alpha: what the hub asks and what it is told. */
class FakeBroker implements SegmentBroker {
  readonly asked: string[] = [];
  holders = new Set(['alpha']);
  request(pluginId: string, m: SegmentMsg): Promise<unknown> {
    this.asked.push(`${pluginId} ${m.op}`);
    return Promise.resolve({ id: SEG, op: m.op });
  }
  pass(sender: string, receiver: string, refs: readonly SegmentRef[]) {
    this.asked.push(`pass ${sender}->${receiver} ${refs.map((r) => `${r.id.slice(0, 1)}${r.grant ? `:${r.grant}` : ''}`).join(',')}`);
    for (const r of refs) {
      if (r.id !== SEG || !this.holders.has(sender)) return Promise.resolve({ allowed: false as const, code: 'LM_PERMISSION_DENIED' as const, reason: `${sender} does not hold ${r.id}` });
      if (!this.holders.has(receiver) && !r.grant) return Promise.resolve({ allowed: false as const, code: 'LM_PERMISSION_DENIED' as const, reason: `${receiver} has no access` });
      this.holders.add(receiver);
    }
    return Promise.resolve({ allowed: true as const });
  }
}

describe('hub: schemas on the wire and segment handles (intake steps)', () => {
  let hub: Hub;
  let broker: FakeBroker;
  const audit: AuditEntry[] = [];
  const { connect } = hubHarness('lm-hub-schemas-', async (sock) => {
    broker = new FakeBroker();
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 'secret-token', segments: broker, audit: (e) => audit.push({ time: Date.now(), ...e }) });
    const schemas = compileMethodSchemas({
      sum: { params: { type: 'object', required: ['xs'], properties: { xs: { type: 'array', items: { type: 'number' } } }, additionalProperties: false }, result: { type: 'number' } },
    });
    await hub.attachPlugin(policy('alpha', [], ['beta.sum', 'beta.take', 'gamma.take'], { sharedMemory: true }), sock('alpha'));
    await hub.attachPlugin(policy('beta', ['sum', 'take'], ['alpha.none'], { sharedMemory: true, schemas }), sock('beta'));
    await hub.attachPlugin(policy('gamma', ['take'], ['beta.take']), sock('gamma'));
    return hub;
  });

  it('a call that breaks the params schema gets LM_SCHEMA, with method, path, expected and found; the target never sees it', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['sum', 'take']);
    const seen: Msg[] = [];
    b.serve((m) => {
      seen.push(m);
      return (m.data as { xs: number[] }).xs.reduce((x, y) => x + y, 0);
    });
    const bad = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'sum', data: { xs: [1, 'two'] } }));
    expect(bad).toMatchObject({ success: false, error: { code: 'LM_SCHEMA', message: 'beta.sum params: /xs/1 must be a value of type number (found "two" (string))' } });
    const missing = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'sum', data: {} }));
    expect((missing.error as { message: string }).message).toMatch(/^beta\.sum params: \/xs must be the required field 'xs'/);
    expect(seen).toEqual([]);
    expect(await a.reply(a.send({ type: 'request', to: ['beta'], method: 'sum', data: { xs: [1, 2] } }))).toMatchObject({ success: true, data: 3 });
    hub.flushAudit();
    expect(audit.filter((e) => e.code === 'LM_SCHEMA').map((e) => `${e.who} ${e.action} ${e.resource}`)).toEqual(['alpha call beta.sum', 'alpha call beta.sum']);
  });

  it('an answer that breaks the result schema reaches the caller as LM_SCHEMA', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['sum', 'take']);
    b.serve(() => 'not a number');
    const r = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'sum', data: { xs: [] } }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_SCHEMA', message: 'beta.sum result: / must be a value of type number (found "not a number" (string))' } });
  });

  it('segment messages: only from plugins that set sharedMemory; answered with what the pool says', async () => {
    const a = await connect('alpha');
    const g = await connect('gamma', ['take']);
    expect(await a.reply(a.send({ type: 'segment', op: 'allocate', size: 10 }))).toMatchObject({ success: true, data: { op: 'allocate' } });
    expect(await g.reply(g.send({ type: 'segment', op: 'allocate', size: 10 }))).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: 'plugin gamma does not set coordination.sharedMemory: true' } });
    expect(await a.reply(a.send({ type: 'segment', op: 'free', segment: 'nope' }))).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL' } });
    expect(await a.reply(a.send({ type: 'segment', op: 'allocate', size: 0 }))).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL' } });
    expect(broker.asked).toEqual(['alpha allocate']);
  });

  it('handles: delivered only when the receiver may open them (granted on the way); forged ones refused before delivery', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['sum', 'take']);
    const got: Msg[] = [];
    b.serve((m) => {
      got.push(m);
      return 'taken';
    });
    const without = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'take', data: null, segments: [{ id: SEG }] }));
    expect(without).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    expect(got).toEqual([]);
    const granted = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'take', data: null, segments: [{ id: SEG, grant: 'read' }] }));
    expect(granted).toMatchObject({ success: true, data: 'taken' });
    expect(got[0]?.segments).toEqual([{ id: SEG, grant: 'read' }]);
    const forged = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'take', data: null, segments: [{ id: OTHER, grant: 'read' }] }));
    expect(forged).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    // A plugin without sharedMemory carries none.
    const g = await connect('gamma', ['take']);
    expect(await g.reply(g.send({ type: 'request', to: ['beta'], method: 'take', data: null, segments: [{ id: SEG }] }))).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    // Malformed refs never reach a step.
    expect(await a.reply(a.send({ type: 'request', to: ['beta'], method: 'take', data: null, segments: [{ id: SEG }, { id: SEG }] }))).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL' } });
    expect(await a.reply(a.send({ type: 'event', topic: 't', data: null, segments: [{ id: SEG }] }))).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL', message: "an event that carries 'segments' must name its recipients in 'to'" } });
    expect(broker.asked.filter((x) => x.startsWith('pass'))).toEqual(['pass alpha->beta a', 'pass alpha->beta a:read', 'pass alpha->beta b:read']);
  });

  it('an answer carrying a segment the caller may not open becomes a failure for the caller', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['sum', 'take']);
    b.serve((m) => {
      b.send({ type: 'response', correlationId: m.id, success: true, data: 'here', segments: [{ id: SEG }] });
      return undefined;
    });
    const r = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'take', data: null }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('the answer was refused: beta does not hold') } });
  });
});
