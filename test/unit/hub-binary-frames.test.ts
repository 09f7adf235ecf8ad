import { encode as pack } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

function policy(id: string, exposes: string[], consumes: string[]): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: ['*'], subscribes: ['*'] };
}

/** Binary (msgpack) frames for a plugin whose hello lists them; JSON text for everyone else. */
describe('hub: binary frames where both ends agree', () => {
  let hub: Hub;
  const { sock, track } = hubHarness('lm-hub-frames-', async (sock) => {
    hub = new Hub({ log: silentLogger, token: 'secret-token' });
    await hub.attachPlugin(policy('bin', ['echo'], ['txt.echo']), sock('bin'));
    await hub.attachPlugin(policy('txt', ['echo'], ['bin.echo']), sock('txt'));
    return hub;
  });
  const open = async (id: string) => track(await Client.open(`ws+unix://${sock(id)}:/v1`));

  it('answers hello in JSON naming msgpack, then speaks msgpack to that plugin only, both ways', async () => {
    const b = await open('bin');
    const hello = await b.reply(b.send({ type: 'hello', protocol: 1, methods: ['echo'], encodings: ['msgpack', 'json'] }));
    expect(hello).toMatchObject({ success: true, data: { encoding: 'msgpack' } });
    expect([b.textFrames, b.binaryFrames]).toEqual([1, 0]);
    const t = await open('txt');
    expect(await t.reply(t.send({ type: 'hello', protocol: 1, methods: ['echo'] }))).toMatchObject({ data: { encoding: 'json' } });
    t.serve((m) => ({ echoed: m.data }));
    b.serve((m) => ({ echoed: m.data }));
    // msgpack from bin, through the hub, JSON to txt, and its answer back as msgpack.
    const r = await b.reply(b.sendBinary({ type: 'request', to: ['txt'], method: 'echo', data: { n: 1.5, s: 'ü', list: [null, true] } }));
    expect(r).toMatchObject({ success: true, data: { echoed: { n: 1.5, s: 'ü', list: [null, true] } } });
    expect(b.binaryFrames).toBeGreaterThan(0);
    // And the other way: a JSON caller, a msgpack target.
    expect(await t.reply(t.send({ type: 'request', to: ['bin'], method: 'echo', data: 'x' }))).toMatchObject({ success: true, data: { echoed: 'x' } });
    expect(t.binaryFrames).toBe(0);
  });

  it('refuses binary frames from a plugin that did not ask for them, and frames JSON peers could not receive', async () => {
    const t = await open('txt');
    await t.hello(['echo']);
    t.raw(Buffer.from(pack({ type: 'request', id: 'r1', to: ['bin'], method: 'echo', data: null })));
    expect(await t.next((m) => m.type === 'error')).toMatchObject({ error: { code: 'LM_PROTOCOL', message: expect.stringContaining("listed 'msgpack'") } });
    const b = await open('bin');
    await b.reply(b.send({ type: 'hello', protocol: 1, methods: ['echo'], encodings: ['msgpack'] }));
    // 5,000 nested arrays, written by hand: an encoder would recurse as deep.
    const head = Buffer.from(pack({ type: 'request', id: 'r2', to: ['txt'], method: 'echo' }));
    head[0] = 0x85; // a map of five entries: the fifth is data
    b.raw(Buffer.concat([head, Buffer.from(pack('data')), Buffer.alloc(5_000, 0x91), Buffer.from([0x90])]));
    expect(await b.next((m) => m.type === 'error')).toMatchObject({ error: { code: 'LM_PROTOCOL', message: expect.stringContaining('more than 64 levels deep') } });
    b.raw(Buffer.from(pack({ type: 'request', id: 'r3', to: ['txt'], method: 'echo', data: new Uint8Array([1, 2]) })));
    expect(await b.next((m) => m.type === 'error')).toMatchObject({ error: { code: 'LM_PROTOCOL' } });
    b.raw(Buffer.from([0xc1, 0x00]));
    expect(await b.next((m) => m.type === 'error')).toMatchObject({ error: { code: 'LM_PROTOCOL', message: expect.stringContaining('not msgpack') } });
  });
});
