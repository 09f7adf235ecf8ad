import { describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { encodeRequest, encodeResponse, requestHead, responseHead } from '../../src/hub/forward.js';
import type { Request, Response } from '../../src/hub/protocol.js';
import { scanFrame } from '../../src/hub/frame-scan.js';
import { Hub } from '../../src/hub/hub.js';
import { compileMethodSchemas } from '../../src/hub/method-schemas.js';
import { silentLogger } from '../../src/log.js';
import type { Client, Msg } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

const scan = (text: string, limit = 64) => scanFrame(Buffer.from(text), text, limit);

describe('frame scan: the depth and the text of the top-level data', () => {
  it('finds the value of the one top-level data key, whatever it holds', () => {
    expect(scan('{"type":"request","data":{"a":[1,{"b":"}],"}]},"id":"x"}')).toEqual({ depth: 4, data: '{"a":[1,{"b":"}],"}]}', whole: true });
    expect(scan('{"id":"x", "data" : "a,\\"b}" }')).toEqual({ depth: 1, data: '"a,\\"b}"', whole: true });
    expect(scan('{"data":12345678901234567890}').data).toBe('12345678901234567890');
    expect(scan('{"data":null,"id":"é"}')).toEqual({ depth: 1, data: 'null', whole: true });
    // Non-ASCII before the span: the offsets of bytes and characters differ.
    expect(scan('{"id":"ééé","data":{"t":"ü"}}').data).toBe('{"t":"ü"}');
  });

  it('gives no span where the parser could read the keys otherwise: data twice, an escaped key, or none at the top', () => {
    expect(scan('{"data":1,"data":2}').data).toBeUndefined();
    expect(scan('{"data":1,"d\\u0061ta":2}').data).toBeUndefined();
    expect(scan('{"x\\"":1,"data":2}').data).toBeUndefined();
    expect(scan('{"id":"x","inner":{"data":1}}').data).toBeUndefined();
    expect(scan('[{"data":1}]').data).toBeUndefined();
    expect(scan('{"id":"data","x":1}').data).toBeUndefined();
  });

  it('says whether the frame is one object whose braces span it (what a batch parsed at once needs)', () => {
    for (const t of ['{"id":"x"}', ' \t{"a":[1,2],"b":"},{"}\r ', '{}']) expect(scan(t).whole, t).toBe(true);
    // Outside its braces: another value, a separator, an open string; or not an object at all.
    for (const t of ['{"a":1},{"b":2}', '{"a":1}]', '1,{"a":1}', '{"a":1} "x', '{"a":"}', '{"a":[1}', '[{"a":1}]', '"x"', '', ' ', '{"a":1}{']) expect(scan(t).whole, t).toBe(false);
    // Within a batched message: only the frame's own bytes count.
    const text = '{"id":"a"}\n{"id":"b","data":[1]}';
    const buf = Buffer.from(text);
    expect(scanFrame(buf, text, 64, 0, 10)).toEqual({ depth: 1, whole: true });
    expect(scanFrame(buf, text, 64, 11, buf.length)).toEqual({ depth: 2, data: '[1]', whole: true });
  });

  it('stops counting past the limit', () => {
    const deep = `{"data":${'['.repeat(70)}${']'.repeat(70)}}`;
    expect(scan(deep)).toEqual({ depth: 65 });
    expect(scan(deep, 100).depth).toBe(71);
  });
});

function policy(id: string, exposes: string[], consumes: string[], extra: Partial<PluginPolicy> = {}): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: false, publishes: [], subscribes: [], ...extra };
}

describe('hub: params and results forwarded as the sender wrote them', () => {
  const { connect } = hubHarness('lm-hub-forward-', async (sock) => {
    const hub = new Hub({ log: silentLogger, token: 'secret-token' });
    const schemas = compileMethodSchemas({ sum: { params: { type: 'object', required: ['xs'], properties: { xs: { type: 'array', items: { type: 'number' } } } } } });
    await hub.attachPlugin(policy('alpha', [], ['beta.echo', 'beta.sum']), sock('alpha'));
    await hub.attachPlugin(policy('beta', ['echo', 'sum'], [], { schemas }), sock('beta'));
    return hub;
  });
  /** Every text frame a client receives, as text. */
  const frames = (c: Client): string[] => {
    const out: string[] = [];
    c.ws.on('message', (raw: Buffer) => out.push(raw.toString()));
    return out;
  };

  it('a number past 2^53 and the text around it reach the target and come back unchanged, inside the hub envelope', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['echo', 'sum']);
    const atB = frames(b);
    const atA = frames(a);
    const data = '{ "n": 12345678901234567890, "s": "a,}\\"]" }';
    a.raw(`{"type":"request","id":"c1","to":["beta"],"method":"echo","data":${data},"timeout":5000}`);
    const req = await b.next((m) => m.type === 'request');
    expect(req).toMatchObject({ from: 'alpha', to: ['beta'], method: 'echo', timeout: 5000 });
    expect(atB.find((f) => f.includes('"request"'))).toContain(`"data":${data}`);
    b.raw(`{"type":"response","id":"r1","correlationId":${JSON.stringify(req.id)},"success":true,"data":${data}}`);
    const res = await a.reply('c1');
    expect(res).toMatchObject({ type: 'response', from: 'beta', success: true, data: { s: 'a,}"]' } });
    expect(atA.find((f) => f.includes('"c1"'))).toContain(`"data":${data}`);
  });

  it('data given twice, or under an escaped key, goes on as the parsed value: one key, the last', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['echo', 'sum']);
    const atB = frames(b);
    a.raw('{"type":"request","id":"c1","to":["beta"],"method":"echo","data":{"x":1},"d\\u0061ta":{"x":2}}');
    const req = await b.next((m) => m.type === 'request');
    expect(req.data).toEqual({ x: 2 });
    expect(atB.at(-1)).not.toContain('"x":1');
  });

  it('params a schema checked go on serialized again: the target never sees the key the schema did not', async () => {
    const a = await connect('alpha');
    const b = await connect('beta', ['echo', 'sum']);
    const atB = frames(b);
    const seen: Msg[] = [];
    b.serve((m) => {
      seen.push(m);
      return 3;
    });
    // JSON.parse keeps the last "xs" (valid); a parser that kept the first would see a string.
    a.raw('{"type":"request","id":"c1","to":["beta"],"method":"sum","data":{"xs":"not numbers","xs":[1,2]}}');
    expect(await a.reply('c1')).toMatchObject({ success: true, data: 3 });
    expect(seen[0]?.data).toEqual({ xs: [1, 2] });
    expect(atB.at(-1)).not.toContain('not numbers');
  });
});

describe('forwarded frames with their kept heads', () => {
  it('are the frames written whole, whatever the ids and names hold', () => {
    for (const [from, to, method, cid] of [
      ['caller', 'echo', 'echo', 'abc'],
      ['a"b', 'c\\d', 'm', 'x"\\y\u0001'],
    ]) {
      const out: Request = { type: 'request', id: 'h00000000001', from: from!, to: [to!], method: method!, data: { t: 1 }, timeout: 5000, timestamp: 1 };
      const withHead = encodeRequest(out, '{"t":1}', 1 << 20, requestHead(from!, to!, method!));
      expect(withHead).toEqual(encodeRequest(out, '{"t":1}', 1 << 20));
      expect(withHead.ok && JSON.parse(withHead.text)).toEqual(out);
      const reply: Response = { type: 'response', id: 'h00000000002', from: to!, correlationId: cid!, timestamp: 2, success: true, data: [1] };
      const answered = encodeResponse(reply, '[1]', 1 << 20, responseHead(to!));
      expect(answered).toEqual(encodeResponse(reply, '[1]', 1 << 20));
      expect(answered.ok && JSON.parse(answered.text)).toEqual(reply);
    }
  });
});
