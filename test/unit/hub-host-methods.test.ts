import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';

function policy(id: string, consumes: string[]): PluginPolicy {
  return { id, exposes: new Set(), consumes: new Set(consumes), messaging: false, publishes: [], subscribes: [] };
}

/** Host methods served by a host client on the TCP endpoint (docs/protocol.md#register). */
describe('host methods served by a host client', () => {
  let dir: string;
  let hub: Hub;
  let port: number;
  const audit: Omit<AuditEntry, 'time' | 'prev' | 'hash'>[] = [];
  const clients: Client[] = [];
  const plugin = async (id: string) => {
    const c = await Client.open(`ws+unix://${path.join(dir, id, 'hub.sock')}:/v1`);
    clients.push(c);
    await c.hello([]);
    return c;
  };
  const host = async () => {
    const c = await Client.open(`ws://127.0.0.1:${port}/v1`, { Authorization: 'Bearer secret-token-123456' });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hostm-'));
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 'secret-token-123456', hostMethods: ['get_user', 'slow'], audit: (e) => void audit.push(e) });
    port = await hub.listenHost(0);
    await hub.attachPlugin(policy('asker', ['get_user', 'slow', 'other']), path.join(dir, 'asker', 'hub.sock'));
    await hub.attachPlugin(policy('stranger', []), path.join(dir, 'stranger', 'hub.sock'));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a plugin calls a method a host client registered, and gets its answer; the call is audited', async () => {
    const app = await host();
    expect(await app.reply(app.send({ type: 'register', methods: ['get_user'] }))).toMatchObject({ success: true, data: { methods: ['get_user'] } });
    app.serve((m) => ({ name: `user ${(m.data as { id: number }).id}`, from: m.from }));
    const asker = await plugin('asker');
    const r = await asker.reply(asker.send({ type: 'request', to: ['host'], method: 'get_user', data: { id: 7 } }));
    expect(r).toMatchObject({ success: true, from: 'host', data: { name: 'user 7', from: 'asker' } });
    expect(audit).toEqual(expect.arrayContaining([expect.objectContaining({ who: 'host', action: 'register', resource: 'get_user', result: 'allowed' })]));
  });

  it('refuses a caller whose manifest does not list the host method, and a name the operator did not declare', async () => {
    const app = await host();
    await app.reply(app.send({ type: 'register', methods: ['get_user'] }));
    const stranger = await plugin('stranger');
    const denied = await stranger.reply(stranger.send({ type: 'request', to: ['host'], method: 'get_user', data: {} }));
    expect(denied).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("does not list host method 'get_user'") } });
    const undeclared = await app.reply(app.send({ type: 'register', methods: ['other'] }));
    expect(undeclared).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('not declared by the operator: other') } });
    // A plugin cannot register host methods.
    const asker = await plugin('asker');
    expect(await asker.reply(asker.send({ type: 'register', methods: ['get_user'] }))).toMatchObject({ success: false, error: { code: 'LM_PROTOCOL' } });
  });

  it('a declared method nobody serves is unavailable; a second client cannot take a served one', async () => {
    const asker = await plugin('asker');
    expect(await asker.reply(asker.send({ type: 'request', to: ['host'], method: 'get_user', data: {} }))).toMatchObject({ success: false, error: { code: 'LM_PLUGIN_UNAVAILABLE' } });
    const one = await host();
    await one.reply(one.send({ type: 'register', methods: ['get_user'] }));
    const two = await host();
    expect(await two.reply(two.send({ type: 'register', methods: ['get_user'] }))).toMatchObject({ success: false, error: { code: 'LM_PLUGIN_CONFLICT' } });
  });

  it('the call times out like a call to a plugin, and fails at once when the host client goes away', async () => {
    const app = await host();
    await app.reply(app.send({ type: 'register', methods: ['slow', 'get_user'] }));
    const asker = await plugin('asker');
    const timed = await asker.reply(asker.send({ type: 'request', to: ['host'], method: 'slow', data: {}, timeout: 200 }));
    expect(timed).toMatchObject({ success: false, error: { code: 'LM_TIMEOUT' } });
    const open = asker.send({ type: 'request', to: ['host'], method: 'slow', data: {}, timeout: 10_000 });
    await app.next((m) => m.type === 'request' && m.method === 'slow' && m.timeout === 10_000);
    app.ws.terminate();
    expect(await asker.reply(open)).toMatchObject({ success: false, error: { code: 'LM_PLUGIN_EXITED' } });
    // Its names are free again.
    const next = await host();
    expect(await next.reply(next.send({ type: 'register', methods: ['get_user'] }))).toMatchObject({ success: true });
  });
});
