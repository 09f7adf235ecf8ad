import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ErrorCode, ManifestIssue } from '../errors.js';
import schema from './manifest-v2.schema.json' with { type: 'json' };

export { schema as manifestSchema };

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  // allErrors: report every problem at once; useDefaults: the schema is the one place
  // defaults live; verbose: errors carry the offending data and schema for the messages.
  compiled ??= new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, strictRequired: false, strictTuples: false })
    .compile(schema);
  return compiled;
}

/** Validate (and fill defaults into) `data` in place; returns issues without file or position. */
export function validateAgainstSchema(data: unknown): Omit<ManifestIssue, 'file'>[] {
  const validate = validator();
  if (validate(data)) return [];
  const issues: Omit<ManifestIssue, 'file'>[] = [];
  for (const err of validate.errors ?? []) {
    // An `if` failure only says "the then-branch failed"; the then-branch reports the cause.
    if (err.keyword === 'if') continue;
    issues.push(describe(err));
  }
  return issues;
}

function describe(err: ErrorObject): Omit<ManifestIssue, 'file'> {
  const base = err.instancePath;
  const p = err.params as Record<string, unknown>;
  const parent = err.parentSchema as { description?: string; type?: string } | undefined;
  const found = show(err.data);
  let code: ErrorCode = 'LM_MANIFEST_INVALID';
  let path = base;
  let expected: string;
  let foundText = found;
  switch (err.keyword) {
    case 'required':
      path = `${base}/${String(p.missingProperty)}`;
      expected = `the required field '${String(p.missingProperty)}'`;
      foundText = 'it is missing';
      break;
    case 'additionalProperties': {
      path = `${base}/${String(p.additionalProperty)}`;
      const known = Object.keys((err.parentSchema as { properties?: object }).properties ?? {});
      expected = `one of the known fields (${known.join(', ')})`;
      foundText = `unknown field '${String(p.additionalProperty)}'`;
      break;
    }
    case 'type':
      expected = `a value of type ${String(p.type)}`;
      break;
    case 'enum':
      expected = `one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'const':
      expected = JSON.stringify(p.allowedValue);
      break;
    case 'pattern':
      expected = parent?.description ?? `a string matching ${String(p.pattern)}`;
      break;
    case 'minimum':
    case 'maximum': {
      const s = err.parentSchema as { minimum?: number; maximum?: number };
      expected = `an integer from ${s.minimum} to ${s.maximum}`;
      if (base.startsWith('/resources/')) code = 'LM_MANIFEST_LIMIT';
      break;
    }
    case 'minItems':
      expected = `at least ${String(p.limit)} item(s)`;
      foundText = `${(err.data as unknown[]).length} item(s)`;
      break;
    case 'maxItems':
      expected = `at most ${String(p.limit)} item(s)`;
      foundText = `${(err.data as unknown[]).length} item(s)`;
      break;
    case 'uniqueItems':
      expected = 'no duplicate items';
      foundText = `items ${String(p.j)} and ${String(p.i)} are equal`;
      break;
    case 'minLength':
      expected = `at least ${String(p.limit)} character(s)`;
      break;
    case 'maxLength':
      expected = `at most ${String(p.limit)} character(s)`;
      foundText = `${String(err.data).length} characters`;
      break;
    case 'false schema': {
      // A field that only belongs to another capability scope (paths on a network capability).
      const field = base.split('/').pop() ?? '';
      const owner = field === 'hosts' ? 'network' : 'filesystem';
      expected = `'${field}' only on a capability with scope ${owner}`;
      foundText = `'${field}' on a capability of another scope`;
      break;
    }
    default:
      expected = err.message ?? err.keyword;
  }
  return { code, path, expected, found: foundText, message: `expected ${expected}, found ${foundText}` };
}

/** A short, typed rendering of a found value: `"abc" (string)`, `42 (number)`. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  const kind = Array.isArray(value) ? 'array' : typeof value;
  let text = JSON.stringify(value) ?? String(value);
  if (text.length > 60) text = `${text.slice(0, 57)}...`;
  return `${text} (${kind})`;
}
