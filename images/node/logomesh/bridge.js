// The data bridge (docs/data-bridge.md): structured data in json, msgpack
// (@msgpack/msgpack) or protobuf (google.protobuf.Value, @bufbuild/protobuf), byte for byte
// as every other SDK writes it, behind a 16-byte header: "LMSD", version 1, the format
// (1 json, 2 msgpack, 3 protobuf), two zero bytes, the payload's length (uint64 LE). The
// msgpack and protobuf codecs load on first use (codecs.js).
import { msgpack, protobuf } from './codecs.js';
import { LogoMeshError } from './errors.js';

export const FORMATS = Object.freeze({ json: 1, msgpack: 2, protobuf: 3 });
export const HEADER_BYTES = 16;
const MAGIC = 0x44534d4c;

const bad = (message) => new LogoMeshError('LM_INVALID_ARGUMENT', message);
const isPlain = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

function toJson(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad('json cannot carry NaN or infinities; use msgpack or protobuf');
    return JSON.stringify(v);
  }
  if (typeof v === 'bigint') throw bad('json cannot carry integers beyond 2^53 exactly; use msgpack');
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (v instanceof Uint8Array) throw bad('json cannot carry binary data; use msgpack');
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (isPlain(v)) return `{${Object.keys(v).sort(byCodePoint).map((k) => `${JSON.stringify(k)}:${toJson(v[k])}`).join(',')}}`;
  throw bad(`json cannot carry a ${typeof v}`);
}

// Integers past 32 bits go as msgpack's 64-bit integers, as every other SDK writes them.
function forMsgpack(v) {
  if (typeof v === 'number') return Number.isSafeInteger(v) && (v >= 2 ** 32 || v < -(2 ** 31)) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(forMsgpack);
  if (isPlain(v)) return Object.fromEntries(Object.keys(v).map((k) => [k, forMsgpack(v[k])]));
  return v;
}

function fromMsgpack(v) {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(fromMsgpack);
  if (isPlain(v)) return Object.fromEntries(Object.keys(v).map((k) => [k, fromMsgpack(v[k])]));
  return v;
}

function toValue(v) {
  const { create, NullValue, ValueSchema } = protobuf();
  if (v === null || v === undefined) return create(ValueSchema, { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } });
  if (typeof v === 'boolean') return create(ValueSchema, { kind: { case: 'boolValue', value: v } });
  if (typeof v === 'number' || typeof v === 'bigint') return create(ValueSchema, { kind: { case: 'numberValue', value: Number(v) } });
  if (typeof v === 'string') return create(ValueSchema, { kind: { case: 'stringValue', value: v } });
  if (Array.isArray(v)) return create(ValueSchema, { kind: { case: 'listValue', value: { values: v.map(toValue) } } });
  if (isPlain(v)) {
    const fields = {};
    for (const k of Object.keys(v).sort(byCodePoint)) fields[k] = toValue(v[k]);
    return create(ValueSchema, { kind: { case: 'structValue', value: { fields } } });
  }
  throw bad(`protobuf (google.protobuf.Value) cannot carry ${v instanceof Uint8Array ? 'binary data; use msgpack' : `a ${typeof v}`}`);
}

function fromValue(v) {
  switch (v.kind.case) {
    case 'boolValue':
    case 'numberValue':
    case 'stringValue':
      return v.kind.value;
    case 'listValue':
      return v.kind.value.values.map(fromValue);
    case 'structValue':
      return Object.fromEntries(Object.entries(v.kind.value.fields).map(([k, x]) => [k, fromValue(x)]));
    default:
      return null;
  }
}

function check(format) {
  if (!FORMATS[format]) throw bad(`format '${String(format).slice(0, 32)}' is not one of json, msgpack, protobuf`);
}

/** The payload of value in format (no header). */
export function encodeStructured(value, format) {
  check(format);
  if (format === 'json') return Buffer.from(toJson(value), 'utf8');
  if (format === 'msgpack') return msgpack().encode(forMsgpack(value), { sortKeys: true, useBigInt64: true });
  const { toBinary, ValueSchema } = protobuf();
  return toBinary(ValueSchema, toValue(value));
}

export function decodeStructured(payload, format) {
  check(format);
  if (format === 'json') return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  if (format === 'msgpack') return fromMsgpack(msgpack().decode(payload, { useBigInt64: true }));
  const { fromBinary, ValueSchema } = protobuf();
  return fromValue(fromBinary(ValueSchema, payload));
}

/** Header and payload, as written into a segment. */
export function frameStructured(value, format) {
  const payload = encodeStructured(value, format);
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt8(1, 4);
  out.writeUInt8(FORMATS[format], 5);
  out.writeBigUInt64LE(BigInt(payload.length), 8);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** { value, format } of a structured segment's bytes; format, when given, must match. */
export function unframeStructured(buf, format) {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES || b.readUInt32LE(0) !== MAGIC || b.readUInt8(4) !== 1) throw new LogoMeshError('LM_SEGMENT', 'the segment holds no structured data (no LMSD header)');
  const found = Object.keys(FORMATS).find((f) => FORMATS[f] === b.readUInt8(5));
  if (!found || (format && format !== found)) throw new LogoMeshError('LM_SEGMENT', `the segment holds ${found ?? 'an unknown format'}, not ${format}`);
  const length = Number(b.readBigUInt64LE(8));
  if (HEADER_BYTES + length > b.length) throw new LogoMeshError('LM_SEGMENT', `the header says ${length} bytes of data; the segment has ${b.length - HEADER_BYTES}`);
  return { value: decodeStructured(b.subarray(HEADER_BYTES, HEADER_BYTES + length), found), format: found };
}
