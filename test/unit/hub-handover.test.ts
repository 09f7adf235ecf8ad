import { describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

function policy(id: string, exposes: string[], consumes: string[] = []): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: ['*'], subscribes: ['*'] };
}

/**
 * The handover a deploy makes (docs/deploys.md): a plugin's replacement connects on a second
 * socket; at its hello, new calls go to it while the old connection answers what it has.
 */
describe('hub handover from a plugin to its replacement', () => {
  let hub: Hub;
  const { sock, track } = hubHarness('lm-handover-', async (sock) => {
    hub = new Hub({ log: silentLogger, token: 'secret-token-123456' });
    await hub.attachPlugin(policy('caller', [], ['svc.work', 'svc.version']), sock('caller'));
    await hub.attachPlugin(policy('svc', ['work', 'version']), sock('svc'));
    return hub;
  });
  const open = async (name: string) => track(await Client.open(`ws+unix://${sock(name)}:/v1`));

  it('moves new calls to the replacement at its hello; a call in flight on the old one is answered', async () => {
    const caller = await open('caller');
    await caller.hello([]);
    const old = await open('svc');
    await old.hello(['work', 'version']);
    old.serve((m) => (m.method === 'version' ? 1 : undefined));

    // A slow call the old connection holds across the handover.
    const slow = caller.send({ type: 'request', to: ['svc'], method: 'work', data: null, timeout: 10_000 });
    const held = await old.next((m) => m.type === 'request' && m.method === 'work');

    await hub.attachSuccessor(policy('svc', ['work', 'version']), sock('svc.b'));
    // Until the replacement says hello, calls still go to the old connection.
    expect((await caller.reply(caller.send({ type: 'request', to: ['svc'], method: 'version', data: null }))).data).toBe(1);
    const next = await open('svc.b');
    next.serve((m) => (m.method === 'version' ? 2 : undefined));
    await next.hello(['work', 'version']);
    expect(hub.isReady('svc')).toBe(true);
    expect((await caller.reply(caller.send({ type: 'request', to: ['svc'], method: 'version', data: null }))).data).toBe(2);

    // The old connection answers the call it held, after the handover: the caller gets it.
    old.send({ type: 'response', correlationId: held.id, success: true, data: 'done by the old one' });
    expect(await caller.reply(slow)).toMatchObject({ success: true, data: 'done by the old one', from: 'svc' });

    // Retiring: the old connection is told to shut down, and its end is not the plugin's.
    let disconnected = false;
    hub.on('disconnected', () => (disconnected = true));
    expect(hub.retire('svc', 1_000)).toBe(true);
    expect(await old.next((m) => m.type === 'shutdown')).toMatchObject({ data: { graceMs: 1_000 } });
    old.ws.close(1000);
    await new Promise((r) => old.ws.once('close', r));
    await hub.detachRetiring('svc');
    expect(disconnected).toBe(false);
    expect((await caller.reply(caller.send({ type: 'request', to: ['svc'], method: 'version', data: null }))).data).toBe(2);
  });

  it('a replacement that never says hello changes nothing, and is detached', async () => {
    const caller = await open('caller');
    await caller.hello([]);
    const old = await open('svc');
    await old.hello(['work', 'version']);
    old.serve((m) => (m.method === 'version' ? 1 : undefined));
    await hub.attachSuccessor(policy('svc', ['work', 'version']), sock('svc.b'));
    // Its hello asks for a method the (new) manifest does not expose: refused, no handover.
    const bad = await open('svc.b');
    const r = await bad.reply(bad.send({ type: 'hello', protocol: 1, methods: ['other'] }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    await hub.detachSuccessor('svc');
    expect((await caller.reply(caller.send({ type: 'request', to: ['svc'], method: 'version', data: null }))).data).toBe(1);
  });

  it('calls still held by the retiring connection fail with LM_PLUGIN_EXITED when it is detached', async () => {
    const caller = await open('caller');
    await caller.hello([]);
    const old = await open('svc');
    await old.hello(['work']);
    const slow = caller.send({ type: 'request', to: ['svc'], method: 'work', data: null, timeout: 10_000 });
    await old.next((m) => m.type === 'request');
    await hub.attachSuccessor(policy('svc', ['work']), sock('svc.b'));
    await (await open('svc.b')).hello(['work']);
    expect(hub.retiringCalls('svc')).toBe(1);
    await hub.detachRetiring('svc');
    expect(await caller.reply(slow)).toMatchObject({ success: false, error: { code: 'LM_PLUGIN_EXITED' } });
  });

  it('a second replacement while one is pending is refused', async () => {
    await hub.attachSuccessor(policy('svc', ['work']), sock('svc.b'));
    await expect(hub.attachSuccessor(policy('svc', ['work']), sock('svc.c'))).rejects.toMatchObject({ code: 'LM_PLUGIN_CONFLICT' });
  });
});
