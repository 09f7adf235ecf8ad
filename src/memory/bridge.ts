import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { NullValue, ValueSchema, type Value } from '@bufbuild/protobuf/wkt';
import { decode as unpack, encode as pack } from '@msgpack/msgpack';
import { LogoMeshError } from '../errors.js';
import type { ProtobufTypes } from '../protobuf/types.js';

/** A declared message type for format `protobuf` (docs/data-bridge.md#declared-message-types): without one, a `google.protobuf.Value`. */
export interface MessageType {
  /** The fully qualified message name, such as `calc.v1.SumRequest`. */
  readonly type: string;
  /** The descriptor set that declares it. */
  readonly types: ProtobufTypes;
}

/**
 * The data bridge (the spec's CrossRuntimeDataBridge; docs/data-bridge.md): structured data in
 * a segment, in one of three formats that every SDK writes byte for byte alike and reads:
 * `json` (compact, keys in code point order), `msgpack` (the smallest representation of each
 * integer, floats as float64, binary as bin, keys sorted), `protobuf` (a
 * `google.protobuf.Value`, Struct keys sorted; or a declared message type, ../protobuf/types.ts). A structured segment starts with a 16-byte
 * header: `LMSD`, version 1, the format (1 json, 2 msgpack, 3 protobuf), two zero bytes, the
 * payload's length (uint64, little-endian).
 *
 * What each format carries: json no NaN, infinities or binary; protobuf numbers as doubles
 * (integers beyond 2^53 lose precision) and no binary; msgpack everything, with integers
 * beyond 2^53 as BigInt here.
 */
export type Format = 'json' | 'msgpack' | 'protobuf';
export const FORMATS: Readonly<Record<Format, number>> = { json: 1, msgpack: 2, protobuf: 3 };
export const HEADER_BYTES = 16;
const MAGIC = 0x44534d4c; // "LMSD" read as a little-endian uint32

function formatCode(fmt: string): number {
  const code = FORMATS[fmt as Format];
  if (!code) throw new LogoMeshError('LM_INVALID_ARGUMENT', `format '${String(fmt).slice(0, 32)}' is not one of json, msgpack, protobuf`, { field: 'format', expected: 'json, msgpack or protobuf', found: String(fmt).slice(0, 32) });
  return code;
}

function bad(message: string): LogoMeshError {
  return new LogoMeshError('LM_INVALID_ARGUMENT', message, {});
}

/** Keys in code point order (JavaScript's sort compares UTF-16 code units, which differs past U+FFFF). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return d;
  }
  return x.length - y.length;
}

function sortedKeys(o: object): string[] {
  return Object.keys(o).sort(byCodePoint);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function toJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad('json cannot carry NaN or infinities; use msgpack or protobuf');
    return JSON.stringify(v);
  }
  if (typeof v === 'bigint') throw bad('json cannot carry integers beyond 2^53 exactly; use msgpack');
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (v instanceof Uint8Array) throw bad('json cannot carry binary data; use msgpack');
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (isPlainObject(v)) return `{${sortedKeys(v).map((k) => `${JSON.stringify(k)}:${toJson(v[k])}`).join(',')}}`;
  throw bad(`json cannot carry a ${typeof v}`);
}

/** Integers past 32 bits go as msgpack's 64-bit integers (as every other SDK writes them), never as floats. */
function forMsgpack(v: unknown): unknown {
  if (typeof v === 'number') return Number.isSafeInteger(v) && (v >= 2 ** 32 || v < -(2 ** 31)) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(forMsgpack);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = forMsgpack(v[k]);
    return out;
  }
  return v;
}

function fromMsgpack(v: unknown): unknown {
  // A copy: the decoder's binary values are views into the payload, which the caller may reuse.
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(fromMsgpack);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = fromMsgpack(v[k]);
    return out;
  }
  return v;
}

function toValue(v: unknown): Value {
  if (v === null || v === undefined) return create(ValueSchema, { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } });
  if (typeof v === 'boolean') return create(ValueSchema, { kind: { case: 'boolValue', value: v } });
  if (typeof v === 'number') return create(ValueSchema, { kind: { case: 'numberValue', value: v } });
  if (typeof v === 'bigint') return create(ValueSchema, { kind: { case: 'numberValue', value: Number(v) } });
  if (typeof v === 'string') return create(ValueSchema, { kind: { case: 'stringValue', value: v } });
  if (Array.isArray(v)) return create(ValueSchema, { kind: { case: 'listValue', value: { values: v.map(toValue) } } });
  if (isPlainObject(v)) {
    const fields: Record<string, Value> = {};
    for (const k of sortedKeys(v)) fields[k] = toValue(v[k]);
    return create(ValueSchema, { kind: { case: 'structValue', value: { fields } } });
  }
  throw bad(`protobuf (google.protobuf.Value) cannot carry ${v instanceof Uint8Array ? 'binary data; use msgpack' : `a ${typeof v}`}`);
}

function fromValue(v: Value): unknown {
  switch (v.kind.case) {
    case 'boolValue':
    case 'numberValue':
    case 'stringValue':
      return v.kind.value;
    case 'listValue':
      return v.kind.value.values.map(fromValue);
    case 'structValue': {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v.kind.value.fields)) out[k] = fromValue(x);
      return out;
    }
    default:
      return null;
  }
}

/** The payload of `value` in `fmt` (no header). Throws LM_INVALID_ARGUMENT for what the format cannot carry. */
export function encodeStructured(value: unknown, fmt: Format, message?: MessageType): Uint8Array {
  const code = formatCode(fmt);
  if (message) return messageOf(code, message).types.encode(message.type, value);
  switch (code) {
    case 1:
      return Buffer.from(toJson(value), 'utf8');
    case 2:
      return pack(forMsgpack(value), { sortKeys: true, useBigInt64: true });
    default:
      return toBinary(ValueSchema, toValue(value));
  }
}

export function decodeStructured(payload: Uint8Array, fmt: Format, message?: MessageType): unknown {
  const code = formatCode(fmt);
  if (message) return messageOf(code, message).types.decode(message.type, payload);
  switch (code) {
    case 1:
      return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as unknown;
    case 2:
      return fromMsgpack(unpack(payload, { useBigInt64: true }));
    default:
      return fromValue(fromBinary(ValueSchema, payload));
  }
}

/** A message type goes with format protobuf only. */
function messageOf(code: number, message: MessageType): MessageType {
  if (code !== FORMATS.protobuf) throw new LogoMeshError('LM_INVALID_ARGUMENT', `a message type (${String(message.type).slice(0, 128)}) goes with format protobuf only`, { field: 'type', expected: 'format protobuf', found: Object.keys(FORMATS).find((f) => FORMATS[f as Format] === code) ?? '' });
  return message;
}

/** Header and payload, as written into a segment. */
export function frameStructured(value: unknown, fmt: Format, message?: MessageType): Buffer {
  const payload = encodeStructured(value, fmt, message);
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt8(1, 4);
  out.writeUInt8(FORMATS[fmt], 5);
  out.writeBigUInt64LE(BigInt(payload.length), 8);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** The value a structured segment's bytes hold, and its format; `fmt`, when given, must match. LM_SEGMENT otherwise. */
export function unframeStructured(buf: Uint8Array, fmt?: Format, message?: MessageType): { value: unknown; format: Format } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES || b.readUInt32LE(0) !== MAGIC || b.readUInt8(4) !== 1) throw new LogoMeshError('LM_SEGMENT', 'the segment holds no structured data (no LMSD header)', {});
  const format = (Object.keys(FORMATS) as Format[]).find((f) => FORMATS[f] === b.readUInt8(5));
  if (!format) throw new LogoMeshError('LM_SEGMENT', `the segment's header names an unknown format ${b.readUInt8(5)}`, {});
  if (fmt && fmt !== format) throw new LogoMeshError('LM_SEGMENT', `the segment holds ${format}, not ${fmt}`, {});
  const length = Number(b.readBigUInt64LE(8));
  if (HEADER_BYTES + length > b.length) throw new LogoMeshError('LM_SEGMENT', `the header says ${length} bytes of data; the segment has ${b.length - HEADER_BYTES}`, {});
  return { value: decodeStructured(b.subarray(HEADER_BYTES, HEADER_BYTES + length), format, message), format };
}
