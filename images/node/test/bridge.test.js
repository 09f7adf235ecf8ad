// The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
// /opt/logomesh/vectors in the image): each value encodes to exactly the listed bytes, and
// decodes back to itself.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ProtobufTypes, decodeStructured, encodeStructured, frameMessage, frameStructured, unframeMessage, unframeStructured } from 'logomesh';

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

describe('declared message types (test/vectors/protobuf-types.json)', () => {
  const dir = path.dirname(FILE);
  const doc = JSON.parse(readFileSync(path.join(dir, 'protobuf-types.json'), 'utf8'));
  const types = ProtobufTypes.load(path.join(dir, doc.descriptorSet));
  it('has the vectors', () => assert.ok(doc.vectors.length > 5 && doc.invalid.length > 5));
  for (const v of doc.vectors) {
    it(`${v.name}: encodes byte for byte and decodes to proto3 JSON`, () => {
      assert.equal(Buffer.from(types.encode(v.type, v.value)).toString('hex'), v.protobuf);
      assert.deepEqual(types.decode(v.type, Buffer.from(v.protobuf, 'hex')), v.decoded);
    });
  }
  for (const v of doc.invalid) {
    it(`${v.name}: refused with the message every SDK gives`, () => {
      assert.throws(() => types.encode(v.type, v.value), { code: 'LM_INVALID_ARGUMENT', message: v.error });
    });
  }
  it('goes through the segment header, and refuses a type without its format or descriptor set', () => {
    const message = { type: doc.vectors[0].type, types };
    const framed = frameMessage(message, { big: '9007199254740993' });
    assert.equal(framed.readUInt8(5), 3);
    assert.deepEqual(unframeMessage(Buffer.concat([framed, Buffer.alloc(4)]), message), { big: '9007199254740993' });
    assert.throws(() => unframeMessage(frameStructured(1, 'json'), message), { code: 'LM_SEGMENT' });
    assert.throws(() => unframeMessage(framed.subarray(0, framed.length - 1), message), { code: 'LM_SEGMENT' });
    assert.throws(() => frameMessage(message, {}, 'json'), { code: 'LM_INVALID_ARGUMENT' });
    assert.throws(() => frameMessage({ type: message.type }, {}), { code: 'LM_INVALID_ARGUMENT' });
    assert.throws(() => types.encode('no.such.Type', {}), { code: 'LM_INVALID_ARGUMENT' });
    assert.throws(() => ProtobufTypes.load('/nonexistent/types.pb'), { code: 'LM_INVALID_ARGUMENT', message: /nonexistent.*ENOENT/ });
    assert.throws(() => types.decode(message.type, Buffer.from([0xff, 0xff])), { code: 'LM_INVALID_ARGUMENT' });
    assert.throws(() => ProtobufTypes.fromBinary(Buffer.from('0a056a756e6b21', 'hex')), { code: 'LM_INVALID_ARGUMENT' });
  });
});
