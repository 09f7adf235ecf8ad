import type { DescEnum, DescField, DescMessage } from '@bufbuild/protobuf';
import { LogoMeshError } from '../errors.js';

/**
 * @bufbuild/protobuf's ScalarType: the wire's own numbers for the scalar field types
 * (FieldDescriptorProto.Type), held here so that this module loads without the library
 * (runtime.ts). A unit test checks they are the library's.
 */
export const ScalarType = {
  DOUBLE: 1,
  FLOAT: 2,
  INT64: 3,
  UINT64: 4,
  INT32: 5,
  FIXED64: 6,
  FIXED32: 7,
  BOOL: 8,
  STRING: 9,
  BYTES: 12,
  UINT32: 13,
  SFIXED32: 15,
  SFIXED64: 16,
  SINT32: 17,
  SINT64: 18,
} as const;
type ScalarType = (typeof ScalarType)[keyof typeof ScalarType];

/**
 * Does a proto3 JSON value fit a message type? Checked before the library parses it, so that
 * a mismatch is the same LM_INVALID_ARGUMENT in every SDK, with the same message:
 * `protobuf <type>: <JSON path>: expected <what>, found <what>` (the SDKs' own libraries
 * word their errors differently and most name no path). Only the shape is checked here
 * (unknown fields, JSON kinds, enum names); ranges and base64 are left to the library.
 * google.protobuf.* messages (Timestamp, Struct, ...) have their own JSON forms: not walked.
 */
export function checkMessageValue(desc: DescMessage, value: unknown): void {
  walkMessage(desc, value, '', desc.typeName);
}

type Kind = { kind: 'scalar'; scalar: ScalarType } | { kind: 'enum'; enum: DescEnum } | { kind: 'message'; message: DescMessage };

function walkMessage(desc: DescMessage, v: unknown, path: string, root: string): void {
  if (desc.typeName.startsWith('google.protobuf.')) return;
  if (!isObject(v)) fail(root, path, `an object (message ${desc.typeName})`, v);
  for (const [key, x] of Object.entries(v)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    const at = `${path}/${key}`;
    if (!field) fail(root, at, `a field of ${desc.typeName}`, key);
    if (x === null) continue; // proto3 JSON: null is the field's default
    walkField(field, x, at, root);
  }
  for (const oneof of desc.oneofs) {
    const set = oneof.fields.filter((f) => [f.jsonName, f.name].some((k) => v[k] !== undefined && v[k] !== null));
    if (set.length > 1) fail(root, path, `at most one field of oneof ${oneof.name}`, set.map((f) => f.jsonName).join(' and '), true);
  }
}

function walkField(field: DescField, v: unknown, path: string, root: string): void {
  switch (field.fieldKind) {
    case 'list': {
      const elem = kindOf(field.listKind, field);
      if (!Array.isArray(v)) fail(root, path, `a list (repeated ${describe(elem)})`, v);
      v.forEach((x, i) => walkSingle(elem, x, `${path}/${i}`, root));
      return;
    }
    case 'map': {
      const elem = kindOf(field.mapKind, field);
      if (!isObject(v)) fail(root, path, `an object (map of ${describe(elem)})`, v);
      for (const [k, x] of Object.entries(v)) walkSingle(elem, x, `${path}/${k}`, root);
      return;
    }
    default:
      walkSingle(kindOf(field.fieldKind, field), v, path, root);
  }
}

function kindOf(kind: 'scalar' | 'enum' | 'message', field: DescField): Kind {
  const f = field as unknown as { scalar: ScalarType; enum: DescEnum; message: DescMessage };
  if (kind === 'scalar') return { kind, scalar: f.scalar };
  if (kind === 'enum') return { kind, enum: f.enum };
  return { kind, message: f.message };
}

const SCALAR_NAMES: Record<number, string> = {
  [ScalarType.DOUBLE]: 'double',
  [ScalarType.FLOAT]: 'float',
  [ScalarType.INT64]: 'int64',
  [ScalarType.UINT64]: 'uint64',
  [ScalarType.INT32]: 'int32',
  [ScalarType.FIXED64]: 'fixed64',
  [ScalarType.FIXED32]: 'fixed32',
  [ScalarType.BOOL]: 'bool',
  [ScalarType.STRING]: 'string',
  [ScalarType.BYTES]: 'bytes',
  [ScalarType.UINT32]: 'uint32',
  [ScalarType.SFIXED32]: 'sfixed32',
  [ScalarType.SFIXED64]: 'sfixed64',
  [ScalarType.SINT32]: 'sint32',
  [ScalarType.SINT64]: 'sint64',
};

function describe(k: Kind): string {
  if (k.kind === 'message') return k.message.typeName;
  if (k.kind === 'enum') return k.enum.typeName;
  return SCALAR_NAMES[k.scalar] ?? 'scalar';
}

function walkSingle(k: Kind, v: unknown, path: string, root: string): void {
  if (k.kind === 'message') return walkMessage(k.message, v, path, root);
  if (k.kind === 'enum') {
    if (typeof v === 'string' && k.enum.values.some((e) => e.name === v)) return;
    if (typeof v === 'number' && Number.isInteger(v)) return;
    return fail(root, path, `enum ${k.enum.typeName} (one of ${k.enum.values.map((e) => e.name).join(', ')}, or a number)`, v);
  }
  const name = SCALAR_NAMES[k.scalar] ?? 'scalar';
  switch (k.scalar) {
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** The found part of the message, worded alike in every SDK. */
export function shown(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return `${JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v)} (string)`;
  if (typeof v === 'number' || typeof v === 'bigint') return `${String(v)} (number)`;
  if (typeof v === 'boolean') return `${v} (boolean)`;
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'binary data';
  return 'an object';
}

function fail(root: string, path: string, expected: string, found: unknown, raw = false): never {
  const f = raw ? String(found) : shown(found);
  throw new LogoMeshError('LM_INVALID_ARGUMENT', `protobuf ${root}: ${path || '/'}: expected ${expected}, found ${f}`, { field: path || '/', expected, found: f });
}
