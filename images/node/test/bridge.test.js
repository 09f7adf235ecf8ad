// The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
// /opt/logomesh/vectors in the image): each value encodes to exactly the listed bytes, and
// decodes back to itself.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeStructured, encodeStructured, frameStructured, unframeStructured } from 'logomesh';

const FILE = process.env.LOGOMESH_VECTORS ?? '/opt/logomesh/vectors/bridge.json';
const { vectors } = JSON.parse(readFileSync(FILE, 'utf8'));

function fromTagged(v) {
  if (Array.isArray(v)) return v.map(fromTagged);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && typeof v.$int === 'string') {
      const n = BigInt(v.$int);
      return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
    }
    if (keys.length === 1 && typeof v.$float === 'string') return Number(v.$float);
    if (keys.length === 1 && typeof v.$bytes === 'string') return new Uint8Array(Buffer.from(v.$bytes, 'hex'));
    return Object.fromEntries(keys.map((k) => [k, fromTagged(v[k])]));
  }
  return v;
}

describe('the data bridge (test/vectors/bridge.json)', () => {
  it('has the awkward values', () => assert.ok(vectors.length > 10));
  for (const v of vectors) {
    for (const [format, hex] of Object.entries(v.encoded)) {
      it(`${v.name} (${format}) encodes byte for byte and decodes back`, () => {
        const value = fromTagged(v.value);
        assert.equal(Buffer.from(encodeStructured(value, format)).toString('hex'), hex);
        assert.deepEqual(decodeStructured(Buffer.from(hex, 'hex'), format), value);
      });
    }
  }
  it('frames and refuses what a format cannot carry', () => {
    const framed = frameStructured({ a: [1, 2] }, 'msgpack');
    assert.deepEqual(unframeStructured(Buffer.concat([framed, Buffer.alloc(5)])), { value: { a: [1, 2] }, format: 'msgpack' });
    assert.throws(() => unframeStructured(framed, 'json'), { code: 'LM_SEGMENT' });
    assert.throws(() => encodeStructured(NaN, 'json'), { code: 'LM_INVALID_ARGUMENT' });
    assert.throws(() => encodeStructured(new Uint8Array(1), 'protobuf'), { code: 'LM_INVALID_ARGUMENT' });
  });
});
