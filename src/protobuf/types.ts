import type { DescMessage, FileRegistry, JsonValue } from '@bufbuild/protobuf';
import { LogoMeshError } from '../errors.js';
import { checkMessageValue } from './check.js';
import { protobufRuntime } from './runtime.js';

/** Larger descriptor sets are refused: a plugin's own types are a few KiB. */
export const MAX_DESCRIPTOR_SET_BYTES = 1024 * 1024;

/**
 * Declared protobuf message types for the data bridge (docs/data-bridge.md#declared-message-types):
 * the messages of a binary FileDescriptorSet (`protoc --include_imports --descriptor_set_out`),
 * through @bufbuild/protobuf's registry. A value maps to a message the proto3 JSON way: field
 * json names (or proto names), 64-bit integers as decimal strings, bytes as base64, enums by
 * name; decoding gives that canonical JSON (fields at their default value omitted).
 */
export class ProtobufTypes {
  private constructor(private readonly registry: FileRegistry) {}

  /** Throws LM_INVALID_ARGUMENT when the bytes are not a FileDescriptorSet whose imports are all in it. */
  static fromBinary(bytes: Uint8Array, source = 'the descriptor set'): ProtobufTypes {
    if (bytes.length > MAX_DESCRIPTOR_SET_BYTES) throw invalid(`${source}: expected a FileDescriptorSet of at most ${MAX_DESCRIPTOR_SET_BYTES} bytes, found ${bytes.length} bytes`, source);
    const { pb, wkt } = protobufRuntime();
    try {
      return new ProtobufTypes(pb.createFileRegistry(pb.fromBinary(wkt.FileDescriptorSetSchema, bytes)));
    } catch (err) {
      throw invalid(`${source}: expected a FileDescriptorSet (protoc --include_imports --descriptor_set_out), found bytes that are not one (${(err as Error).message})`, source);
    }
  }

  /** The fully qualified names of every message type it declares, sorted. */
  messageNames(): string[] {
    const names: string[] = [];
    for (const t of this.registry) if (t.kind === 'message') names.push(t.typeName);
    return names.sort();
  }

  /** The message type `typeName` (fully qualified, such as `calc.v1.SumRequest`); LM_INVALID_ARGUMENT if it declares none. */
  message(typeName: string): DescMessage {
    const desc = this.registry.getMessage(typeName);
    if (!desc) throw new LogoMeshError('LM_INVALID_ARGUMENT', `protobuf: expected a message type the descriptor set declares, found '${String(typeName).slice(0, 128)}'`, { field: 'type', expected: 'a declared message type', found: String(typeName).slice(0, 128) });
    return desc;
  }

  /** `value` (proto3 JSON) as the binary message `typeName`, deterministic (map entries by key). */
  encode(typeName: string, value: unknown): Uint8Array {
    const desc = this.message(typeName);
    checkMessageValue(desc, value);
    try {
      const { pb } = protobufRuntime();
      return pb.toBinary(desc, pb.fromJson(desc, sortKeys(value) as JsonValue));
    } catch (err) {
      throw new LogoMeshError('LM_INVALID_ARGUMENT', `protobuf ${typeName}: ${(err as Error).message}`, { field: typeName, expected: `a value of ${typeName}`, found: (err as Error).message });
    }
  }

  /** The message `typeName` in `bytes`, as proto3 JSON. */
  decode(typeName: string, bytes: Uint8Array): JsonValue {
    const desc = this.message(typeName);
    try {
      const { pb } = protobufRuntime();
      return pb.toJson(desc, pb.fromBinary(desc, bytes));
    } catch (err) {
      throw new LogoMeshError('LM_INVALID_ARGUMENT', `protobuf ${typeName}: expected the bytes of a ${typeName}, found bytes that are not one (${(err as Error).message})`, { field: typeName, expected: `a ${typeName}`, found: (err as Error).message });
    }
  }
}

function invalid(message: string, source: string): LogoMeshError {
  return new LogoMeshError('LM_INVALID_ARGUMENT', message, { file: source });
}

/** Map entries are written in the order of the value's keys: sort them (code point order) as Go and Python do. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort(byCodePoint).map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
