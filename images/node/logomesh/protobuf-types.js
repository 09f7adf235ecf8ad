// Declared protobuf message types for the data bridge (docs/data-bridge.md#declared-message-types):
// the messages of a binary FileDescriptorSet (protoc --include_imports --descriptor_set_out)
// through @bufbuild/protobuf's registry. A value maps to a message the proto3 JSON way: field
// json names (or proto names), 64-bit integers as decimal strings, bytes as base64, enums by
// name; decoding gives that canonical JSON (fields at their default value omitted). A value
// that does not fit is LM_INVALID_ARGUMENT, worded as in every SDK:
// `protobuf <type>: <JSON path>: expected <what>, found <what>`.
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FORMATS, HEADER_BYTES } from './bridge.js';
import { LogoMeshError } from './errors.js';

export const MAX_DESCRIPTOR_SET_BYTES = 1024 * 1024;

const bad = (message) => new LogoMeshError('LM_INVALID_ARGUMENT', message);

// @bufbuild/protobuf loads when the first descriptor set does: most plugins never use
// declared types, and evaluating the library at import costs an idle plugin memory
// (docs/performance.md). require() (its CommonJS build) keeps the API synchronous, and is not
// named `require` so that the image's esbuild bundle leaves it to run time (the package is in
// the SDK's node_modules there).
const load = createRequire(import.meta.url);
let lib;
function pb() {
  lib ??= { ...load('@bufbuild/protobuf'), FileDescriptorSetSchema: load('@bufbuild/protobuf/wkt').FileDescriptorSetSchema };
  return lib;
}

export class ProtobufTypes {
  #registry;

  constructor(registry) {
    this.#registry = registry;
  }

  /** The message types of a binary FileDescriptorSet. */
  static fromBinary(bytes, source = 'the descriptor set') {
    if (bytes.length > MAX_DESCRIPTOR_SET_BYTES) throw bad(`${source}: expected a FileDescriptorSet of at most ${MAX_DESCRIPTOR_SET_BYTES} bytes, found ${bytes.length} bytes`);
    try {
      const { createFileRegistry, fromBinary, FileDescriptorSetSchema } = pb();
      return new ProtobufTypes(createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes)));
    } catch (err) {
      throw bad(`${source}: expected a FileDescriptorSet (protoc --include_imports --descriptor_set_out), found bytes that are not one (${err.message})`);
    }
  }

  /** The message types of a descriptor set file, such as one in the plugin's folder. */
  static load(path) {
    let bytes;
    try {
      const { size } = statSync(path);
      if (size > MAX_DESCRIPTOR_SET_BYTES) throw bad(`${path}: expected a FileDescriptorSet of at most ${MAX_DESCRIPTOR_SET_BYTES} bytes, found ${size} bytes`);
      bytes = readFileSync(path);
    } catch (err) {
      if (err instanceof LogoMeshError) throw err;
      throw bad(`${path}: expected a descriptor set file, found ${err.code ?? err.message}`);
    }
    return ProtobufTypes.fromBinary(bytes, path);
  }

  messageNames() {
    const names = [];
    for (const t of this.#registry) if (t.kind === 'message') names.push(t.typeName);
    return names.sort();
  }

  #message(typeName) {
    const desc = this.#registry.getMessage(typeName);
    if (!desc) throw bad(`protobuf: expected a message type the descriptor set declares, found '${String(typeName).slice(0, 128)}'`);
    return desc;
  }

  /** `value` (proto3 JSON) as the binary message `typeName`, deterministic (map entries by key). */
  encode(typeName, value) {
    const desc = this.#message(typeName);
    walkMessage(desc, value, '', desc.typeName);
    try {
      return pb().toBinary(desc, pb().fromJson(desc, sortKeys(value)));
    } catch (err) {
      throw bad(`protobuf ${typeName}: ${err.message}`);
    }
  }

  /** The message `typeName` in `bytes`, as proto3 JSON. */
  decode(typeName, bytes) {
    const desc = this.#message(typeName);
    try {
      return pb().toJson(desc, pb().fromBinary(desc, bytes));
    } catch (err) {
      throw bad(`protobuf ${typeName}: expected the bytes of a ${typeName}, found bytes that are not one (${err.message})`);
    }
  }
}

/** `value` as the declared message `type` of `types` (format protobuf), with the data bridge's header. */
export function frameMessage({ type, types }, value, format = 'protobuf') {
  if (format !== 'protobuf') throw bad(`a message type (${String(type).slice(0, 128)}) goes with format protobuf only`);
  if (!(types instanceof ProtobufTypes)) throw bad(`message type ${String(type).slice(0, 128)} needs types: ProtobufTypes.load(<descriptor set>)`);
  const payload = types.encode(type, value);
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  messageHeader(payload.length).copy(out);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** The declared message `type` a structured segment's bytes hold (the header must say protobuf). */
export function unframeMessage(buf, { type, types }, format = 'protobuf') {
  if (format !== undefined && format !== 'protobuf') throw bad(`a message type (${String(type).slice(0, 128)}) goes with format protobuf only`);
  if (!(types instanceof ProtobufTypes)) throw bad(`message type ${String(type).slice(0, 128)} needs types: ProtobufTypes.load(<descriptor set>)`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES || b.toString('latin1', 0, 4) !== 'LMSD' || b.readUInt8(4) !== 1) throw new LogoMeshError('LM_SEGMENT', 'the segment holds no structured data (no LMSD header)');
  const found = Object.keys(FORMATS).find((f) => FORMATS[f] === b.readUInt8(5));
  if (found !== 'protobuf') throw new LogoMeshError('LM_SEGMENT', `the segment holds ${found ?? 'an unknown format'}, not protobuf`);
  const length = Number(b.readBigUInt64LE(8));
  if (HEADER_BYTES + length > b.length) throw new LogoMeshError('LM_SEGMENT', `the header says ${length} bytes of data; the segment has ${b.length - HEADER_BYTES}`);
  return types.decode(type, b.subarray(HEADER_BYTES, HEADER_BYTES + length));
}

function messageHeader(length) {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write('LMSD', 0, 'latin1');
  h.writeUInt8(1, 4);
  h.writeUInt8(FORMATS.protobuf, 5);
  h.writeBigUInt64LE(BigInt(length), 8);
  return h;
}

// Map entries are written in the order of the value's keys: sorted (code point order) as Go and Python do.
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((k) => [k, sortKeys(v[k])]));
  return v;
}

// The shape check, before the library parses the value, so that every SDK words a mismatch alike.
// @bufbuild/protobuf's ScalarType values are descriptor.proto's FieldDescriptorProto.Type numbers.
const ScalarType = { DOUBLE: 1, FLOAT: 2, INT64: 3, UINT64: 4, INT32: 5, FIXED64: 6, FIXED32: 7, BOOL: 8, STRING: 9, BYTES: 12, UINT32: 13, SFIXED32: 15, SFIXED64: 16, SINT32: 17, SINT64: 18 };
const SCALAR_NAMES = Object.fromEntries(Object.entries(ScalarType).map(([name, n]) => [n, name.toLowerCase()]));

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function shown(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return `${JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v)} (string)`;
  if (typeof v === 'number' || typeof v === 'bigint') return `${String(v)} (number)`;
  if (typeof v === 'boolean') return `${v} (boolean)`;
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'binary data';
  return 'an object';
}

function fail(root, path, expected, found, raw = false) {
  const f = raw ? String(found) : shown(found);
  throw new LogoMeshError('LM_INVALID_ARGUMENT', `protobuf ${root}: ${path || '/'}: expected ${expected}, found ${f}`, { path: path || '/', expected, found: f });
}

function walkMessage(desc, v, path, root) {
  if (desc.typeName.startsWith('google.protobuf.')) return; // their own JSON forms: left to the library
  if (!isObject(v)) fail(root, path, `an object (message ${desc.typeName})`, v);
  for (const [key, x] of Object.entries(v)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    const at = `${path}/${key}`;
    if (!field) fail(root, at, `a field of ${desc.typeName}`, key);
    if (x === null) continue; // proto3 JSON: null is the field's default
    if (field.fieldKind === 'list') {
      if (!Array.isArray(x)) fail(root, at, `a list (repeated ${describe(field.listKind, field)})`, x);
      x.forEach((e, i) => walkSingle(field.listKind, field, e, `${at}/${i}`, root));
    } else if (field.fieldKind === 'map') {
      if (!isObject(x)) fail(root, at, `an object (map of ${describe(field.mapKind, field)})`, x);
      for (const [k, e] of Object.entries(x)) walkSingle(field.mapKind, field, e, `${at}/${k}`, root);
    } else walkSingle(field.fieldKind, field, x, at, root);
  }
  for (const oneof of desc.oneofs) {
    const set = oneof.fields.filter((f) => [f.jsonName, f.name].some((k) => v[k] !== undefined && v[k] !== null));
    if (set.length > 1) fail(root, path, `at most one field of oneof ${oneof.name}`, set.map((f) => f.jsonName).join(' and '), true);
  }
}

function describe(kind, field) {
  if (kind === 'message') return field.message.typeName;
  if (kind === 'enum') return field.enum.typeName;
  return SCALAR_NAMES[field.scalar] ?? 'scalar';
}

function walkSingle(kind, field, v, path, root) {
  if (kind === 'message') return walkMessage(field.message, v, path, root);
  if (kind === 'enum') {
    if (typeof v === 'string' && field.enum.values.some((e) => e.name === v)) return;
    if (typeof v === 'number' && Number.isInteger(v)) return;
    return fail(root, path, `enum ${field.enum.typeName} (one of ${field.enum.values.map((e) => e.name).join(', ')}, or a number)`, v);
  }
  const name = SCALAR_NAMES[field.scalar] ?? 'scalar';
  switch (field.scalar) {
    case ScalarType.BOOL:
      if (typeof v !== 'boolean') fail(root, path, 'bool (true or false)', v);
      return;
    case ScalarType.STRING:
      if (typeof v !== 'string') fail(root, path, 'string', v);
      return;
    case ScalarType.BYTES:
      if (typeof v !== 'string') fail(root, path, 'bytes (a base64 string)', v);
      return;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof v !== 'number' && typeof v !== 'string') fail(root, path, `${name} (a number)`, v);
      return;
    default:
      if (!(typeof v === 'number' && Number.isInteger(v)) && typeof v !== 'bigint' && !(typeof v === 'string' && /^-?[0-9]+$/.test(v))) {
        fail(root, path, `${name} (an integer or a decimal string)`, v);
      }
  }
}
