import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { topicCovers } from '../../src/manifest/topics.js';
import { silentLogger } from '../../src/log.js';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { Client } from './support/hub-client.js';
import { hubGrants } from './support/grants.js';
import type { Grants } from '../../src/grants/grants.js';

/** Who may hear whom: events, broadcasts and subscriptions under the manifests' publishes and subscribes. */

function policy(id: string, publishes: string[], subscribes: string[], messaging = publishes.length > 0): PluginPolicy {
  return { id, exposes: new Set(), consumes: new Set(), messaging, publishes, subscribes };
}

const settle = () => new Promise((r) => setTimeout(r, 150));

describe('topic access control', () => {
  let dir: string;
  let hub: Hub;
  let grants: Grants;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const clients: Client[] = [];
  const sock = (id: string) => path.join(dir, id, 'hub.sock');
  const connect = async (id: string) => {
    const c = await Client.open(`ws+unix://${sock(id)}:/v1`);
    clients.push(c);
    await c.hello([]);
    return c;
  };
  const events = (c: Client) => c.inbox.filter((m) => m.type === 'event' || m.type === 'broadcast');

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-topics-'));
    audit.length = 0;
    // The revocations are the controller's (Grants); the hub asks it at every publish, subscription and delivery.
    grants = hubGrants({ thoughts: { publishes: ['thought.added'] }, analyzer: { subscribes: ['thought.added'] }, snoop: { publishes: ['snoop.*'], subscribes: ['snoop.*'] }, mute: {} }, (e) => audit.push(e), () => hub);
    hub = new Hub({ log: silentLogger, token: 't', audit: (e) => audit.push(e), isTopicRevoked: grants.isTopicRevoked });
    await hub.attachPlugin(policy('thoughts', ['thought.added'], []), sock('thoughts'));
    await hub.attachPlugin(policy('analyzer', [], ['thought.added']), sock('analyzer'));
    await hub.attachPlugin(policy('snoop', ['snoop.*'], ['snoop.*']), sock('snoop'));
    await hub.attachPlugin(policy('mute', [], [], false), sock('mute'));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a plugin that subscribes to *, to another plugin's topic or to a prefix it did not declare is refused, audited, and hears nothing", async () => {
    const thoughts = await connect('thoughts');
    const snoop = await connect('snoop');
    for (const topic of ['*', 'thought.added', 'thought.*', 'snoop', 'other']) {
      const r = await snoop.reply(snoop.send({ type: 'subscribe', topic }));
      expect(r, topic).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining(`may not subscribe to '${topic}'`) } });
    }
    expect(await snoop.reply(snoop.send({ type: 'subscribe', topic: 'snoop.*' }))).toMatchObject({ success: true });
    thoughts.send({ type: 'event', topic: 'thought.added', data: { text: 'a secret' } });
    await settle();
    expect(events(snoop)).toEqual([]);
    expect(audit.filter((e) => e.who === 'snoop' && e.action === 'subscribe' && e.result === 'denied').map((e) => e.resource).sort()).toEqual(['*', 'other', 'snoop', 'thought.*', 'thought.added'].sort());
  });

  it('a plugin that emits or broadcasts under a topic it does not publish is refused and audited; the subscriber sees the true sender', async () => {
    const analyzer = await connect('analyzer');
    const snoop = await connect('snoop');
    const thoughts = await connect('thoughts');
    expect(await analyzer.reply(analyzer.send({ type: 'subscribe', topic: 'thought.added' }))).toMatchObject({ success: true });
    for (const m of [
      { type: 'event', topic: 'thought.added', data: 'forged' },
      { type: 'broadcast', topic: 'thought.added', data: 'forged' },
      { type: 'event', topic: 'thought.added', to: ['analyzer'], data: 'forged' },
      { type: 'broadcast', data: 'to everyone' },
    ]) {
      const r = await snoop.reply(snoop.send(m));
      expect(r, JSON.stringify(m)).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    }
    thoughts.send({ type: 'event', topic: 'thought.added', data: { text: 'real' } });
    const got = await analyzer.next((m) => m.type === 'event');
    expect(got).toMatchObject({ topic: 'thought.added', from: 'thoughts', data: { text: 'real' } });
    await settle();
    expect(events(analyzer)).toEqual([]);
    expect(audit.filter((e) => e.who === 'snoop' && e.result === 'denied').map((e) => `${e.action} ${e.resource}`)).toEqual(['event thought.added', 'broadcast thought.added', 'broadcast *']);
    // A plugin without messaging publishes nothing, whatever it lists.
    const mute = await connect('mute');
    expect(await mute.reply(mute.send({ type: 'event', topic: 'x', data: 1 }))).toMatchObject({ error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('messaging') } });
  });

  it('an event sent to named plugins reaches them only if each may hear its topic: otherwise it is refused for all', async () => {
    const thoughts = await connect('thoughts');
    const analyzer = await connect('analyzer');
    const snoop = await connect('snoop');
    const r = await thoughts.reply(thoughts.send({ type: 'event', topic: 'thought.added', to: ['analyzer', 'snoop'], data: 1 }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('plugin snoop may not receive') } });
    await settle();
    expect(events(analyzer)).toEqual([]);
    thoughts.send({ type: 'event', topic: 'thought.added', to: ['analyzer'], data: 2 });
    expect((await analyzer.next((m) => m.type === 'event')).data).toBe(2);
    expect(events(snoop)).toEqual([]);
  });

  it('revoking a topic bites on the next message, both ways; granting it back restores it', async () => {
    const thoughts = await connect('thoughts');
    const analyzer = await connect('analyzer');
    await analyzer.reply(analyzer.send({ type: 'subscribe', topic: 'thought.added' }));
    grants.revokeTopic('analyzer', 'thought.added');
    thoughts.send({ type: 'event', topic: 'thought.added', data: 'after the revocation' });
    await settle();
    expect(events(analyzer)).toEqual([]);
    expect(await analyzer.reply(analyzer.send({ type: 'subscribe', topic: 'thought.added' }))).toMatchObject({ error: { message: expect.stringContaining("the operator revoked 'thought.added'") } });
    grants.grantTopic('analyzer', 'thought.added');
    thoughts.send({ type: 'event', topic: 'thought.added', data: 'granted again' });
    expect((await analyzer.next((m) => m.type === 'event')).data).toBe('granted again');
    grants.revokeTopic('thoughts', 'thought.added');
    expect(await thoughts.reply(thoughts.send({ type: 'event', topic: 'thought.added', data: 'x' }))).toMatchObject({ error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('revoked') } });
    expect(audit.filter((e) => e.action === 'revoke' || e.action === 'grant').map((e) => `${e.who} ${e.action} ${e.resource}`)).toEqual([
      'operator revoke analyzer:topic:thought.added',
      'operator grant analyzer:topic:thought.added',
      'operator revoke thoughts:topic:thought.added',
    ]);
  });

  it('subscriptions in hello are in place before the plugin is ready, and held to the manifest like subscribe', async () => {
    const analyzer = await Client.open(`ws+unix://${sock('analyzer')}:/v1`);
    clients.push(analyzer);
    const ok = await analyzer.reply(analyzer.send({ type: 'hello', protocol: 1, methods: [], subscriptions: ['thought.added'] }));
    expect(ok).toMatchObject({ success: true });
    hub.emitEvent('thought.added', 'right after ready');
    expect((await analyzer.next((m) => m.type === 'event')).data).toBe('right after ready');
    const snoop = await Client.open(`ws+unix://${sock('snoop')}:/v1`);
    clients.push(snoop);
    const refused = await snoop.reply(snoop.send({ type: 'hello', protocol: 1, methods: [], subscriptions: ['snoop.*', 'thought.added'] }));
    expect(refused).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("may not subscribe to 'thought.added'") } });
    expect(hub.isReady('snoop')).toBe(false);
  });

  it('a topic the operator revoked does not refuse hello: the plugin is subscribed, hears nothing while revoked, and hears again once granted', async () => {
    grants.revokeTopic('analyzer', 'thought.added');
    const analyzer = await Client.open(`ws+unix://${sock('analyzer')}:/v1`);
    clients.push(analyzer);
    expect(await analyzer.reply(analyzer.send({ type: 'hello', protocol: 1, methods: [], subscriptions: ['thought.added'] }))).toMatchObject({ success: true });
    hub.emitEvent('thought.added', 'while revoked');
    await settle();
    expect(events(analyzer)).toEqual([]);
    grants.grantTopic('analyzer', 'thought.added');
    hub.emitEvent('thought.added', 'granted again');
    expect((await analyzer.next((m) => m.type === 'event')).data).toBe('granted again');
  });

  it('the host publishes and hears everything; its broadcasts without a topic reach every plugin', async () => {
    const mute = await connect('mute');
    const heard: unknown[] = [];
    hub.subscribe('*', (d, meta) => heard.push([meta.from, d]));
    const thoughts = await connect('thoughts');
    thoughts.send({ type: 'event', topic: 'thought.added', data: 'x' });
    hub.broadcast(undefined, 'announcement');
    expect((await mute.next((m) => m.type === 'broadcast')).data).toBe('announcement');
    await settle();
    expect(heard).toEqual([['thoughts', 'x']]);
  });

  it('what a declared pattern covers', () => {
    const cases: [string, string, boolean][] = [
      ['*', '*', true],
      ['*', 'a.b', true],
      ['a.*', 'a.b', true],
      ['a.*', 'a.b.c', true],
      ['a.*', 'a.b.*', true],
      ['a.*', 'a.*', true],
      ['a.*', 'a', false],
      ['a.*', 'ab.c', false],
      ['a.*', '*', false],
      ['a.b', 'a.b', true],
      ['a.b', 'a.*', false],
      ['a.b', 'a.b.c', false],
    ];
    for (const [declared, target, covered] of cases) expect(topicCovers(declared, target), `${declared} covers ${target}`).toBe(covered);
  });
});
