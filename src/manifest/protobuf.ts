import path from 'node:path';
import type { ManifestIssue } from '../errors.js';
import { LogoMeshError } from '../errors.js';
import { MAX_DESCRIPTOR_SET_BYTES, ProtobufTypes } from '../protobuf/types.js';
import { readRegularFile } from '../read-file.js';

type Issue = Omit<ManifestIssue, 'file'>;

const AT = '/coordination/protobuf';

/**
 * coordination.protobuf (docs/data-bridge.md#declared-message-types): the descriptor set must
 * be a regular file inside the plugin folder, at most MAX_DESCRIPTOR_SET_BYTES, that parses as
 * a FileDescriptorSet with all its imports; every message a method names must be in it, and
 * the method exposed. Runs on data that may have failed the schema: checks well-typed fields only.
 */
export function checkProtobuf(coordination: Record<string, unknown>, pluginDir: string): Issue[] {
  const pb = coordination.protobuf;
  if (!isObject(pb) || typeof pb.descriptorSet !== 'string' || pb.descriptorSet === '') return [];
  const issues: Issue[] = [];
  const loaded = readTypes(pluginDir, pb.descriptorSet);
  if ('issue' in loaded) return [loaded.issue];
  const exposed = Array.isArray(coordination.exposesMethods) ? coordination.exposesMethods : [];
  const declared = loaded.types.messageNames();
  for (const [method, m] of Object.entries(isObject(pb.methods) ? pb.methods : {})) {
    if (!exposed.includes(method)) issues.push(issue(`${AT}/methods/${method}`, 'a method listed under coordination.exposesMethods', JSON.stringify(method)));
    if (!isObject(m)) continue;
    for (const part of ['params', 'result'] as const) {
      const name = m[part];
      if (typeof name === 'string' && !declared.includes(name)) {
        issues.push(issue(`${AT}/methods/${method}/${part}`, `a message type ${pb.descriptorSet} declares (${listed(declared)})`, JSON.stringify(name)));
      }
    }
  }
  return issues;
}

/** The declared message types of a loaded plugin (its coordination.protobuf.descriptorSet). Throws LM_MANIFEST_INVALID. */
export function protobufTypesOf(pluginDir: string, descriptorSet: string): ProtobufTypes {
  const loaded = readTypes(pluginDir, descriptorSet);
  if ('issue' in loaded) throw new LogoMeshError('LM_MANIFEST_INVALID', `${loaded.issue.path}: ${loaded.issue.message}`, { path: loaded.issue.path, expected: loaded.issue.expected, found: loaded.issue.found });
  return loaded.types;
}

function readTypes(pluginDir: string, rel: string): { types: ProtobufTypes } | { issue: Issue } {
  const at = `${AT}/descriptorSet`;
  if (path.isAbsolute(rel)) return { issue: issue(at, 'a path relative to the plugin folder', JSON.stringify(rel)) };
  const file = path.resolve(pluginDir, rel);
  const read = readRegularFile(file, { maxBytes: MAX_DESCRIPTOR_SET_BYTES, within: pluginDir });
  if (!read.ok) return { issue: issue(at, read.expected, `${rel}: ${read.found}`) };
  try {
    return { types: ProtobufTypes.fromBinary(read.bytes, rel) };
  } catch (err) {
    return { issue: issue(at, 'a binary FileDescriptorSet (protoc --include_imports --descriptor_set_out)', `${rel}: ${(err as Error).message.replace(/^.*found /, '')}`) };
  }
}

function listed(names: string[]): string {
  if (names.length === 0) return 'it declares none';
  return names.length > 8 ? `${names.slice(0, 8).join(', ')}, ...` : names.join(', ');
}

function issue(p: string, expected: string, found: string): Issue {
  return { code: 'LM_MANIFEST_INVALID', path: p, expected, found, message: `expected ${expected}, found ${found}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
