// The request and the answer written as text around their data's JSON (envelopes.js) are the
// text encode() gives the message object, and fail as it does; and the frame scan that skips
// strings in one step reads escaped quotes as before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

const sdk = (file) => import(new URL(file, import.meta.resolve('logomesh')).href);
const { requestText, responseText, routeJson } = await sdk('envelopes.js');
const { encode, scanJson } = await sdk('protocol.js');

const cycle = {};
cycle.self = cycle;
let deep = [];
for (let i = 0; i < 70; i++) deep = [deep];

const DATA = [undefined, null, 0, -1.5, 1e21, true, 'x', 'é"\\\n\u2028\u0000', [], {}, { a: [1, { b: 2 }] }, () => 1, Symbol('s'), { toJSON: () => 'j' }, new Date(0), [undefined, () => 1], { u: undefined }];
const MAX = 1 << 20;

function outcome(fn) {
  try {
    return { text: fn() };
  } catch (err) {
    return { error: `${err.constructor.name}: ${err.message}`, tooLarge: err.tooLarge };
  }
}

describe('envelopes', () => {
  it('writes a request as JSON.stringify of the message would, with and without a timeout', () => {
    for (const data of DATA) {
      for (const limit of [undefined, 1, 300000]) {
        const msg = { type: 'request', id: '00000000000a', to: ['echo-node'], method: 'echo', data };
        if (limit !== undefined) msg.timeout = limit;
        assert.equal(requestText('00000000000a', routeJson('echo-node', 'echo'), data, limit, MAX), encode(msg, MAX), String(data));
      }
    }
    assert.equal(requestText('00000000000b', routeJson('host', 'list_plugins'), null, undefined, MAX), encode({ type: 'request', id: '00000000000b', to: ['host'], method: 'list_plugins', data: null }, MAX));
  });

  it('writes an answer as JSON.stringify of the message would, the correlation id escaped', () => {
    for (const data of DATA) {
      for (const cid of ['h1', 'we"ird\\\u0000\n', '']) {
        const msg = { type: 'response', id: '00000000000c', correlationId: cid, success: true, data };
        assert.equal(responseText('00000000000c', cid, data, MAX), encode(msg, MAX));
      }
    }
  });

  it('refuses what encode() refuses, with the same error: a cycle, a BigInt, too deep, too large', () => {
    for (const [data, max] of [[cycle, MAX], [10n, MAX], [deep, MAX], ['x'.repeat(300), 200], ['é'.repeat(100), 250]]) {
      const ours = outcome(() => requestText('00000000000a', routeJson('echo-node', 'echo'), data, undefined, max));
      const theirs = outcome(() => encode({ type: 'request', id: '00000000000a', to: ['echo-node'], method: 'echo', data }, max));
      assert.ok(ours.error, 'refused');
      assert.deepEqual(ours, theirs);
      const answer = outcome(() => responseText('00000000000c', 'h1', data, max));
      assert.deepEqual(answer, outcome(() => encode({ type: 'response', id: '00000000000c', correlationId: 'h1', success: true, data }, max)));
    }
  });
});

describe('scanJson skipping strings', () => {
  it('reads escaped quotes and backslash runs, and a string left open', () => {
    assert.deepEqual(scanJson('{"a":"\\"[[["}'), { depth: 1, whole: true });
    assert.deepEqual(scanJson('{"a":"\\\\"}'), { depth: 1, whole: true });
    assert.deepEqual(scanJson('{"a":"\\\\\\"}"}'), { depth: 1, whole: true });
    assert.deepEqual(scanJson('{"a":"\\\\\\"}'), { depth: 1, whole: false });
    assert.deepEqual(scanJson('{"a":"x'), { depth: 1, whole: false });
    assert.deepEqual(scanJson('{"a":[{"b":"]]"}]}'), { depth: 3, whole: true });
    // A span that ends inside a string: the string is open there, whatever follows.
    const text = '{"a":"xyz"}';
    assert.deepEqual(scanJson(text, 0, 8), { depth: 1, whole: false });
  });
});
