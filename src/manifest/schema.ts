import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ErrorCode, ManifestIssue } from '../errors.js';
import { describeSchemaError, show } from '../schema-errors.js';
import { CACHE_DIR } from '../paths.js';
import { schemaValidator } from '../schema-validator.js';
import schema from './manifest-v2.schema.json' with { type: 'json' };

export { schema as manifestSchema };

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  // allErrors: report every problem at once; useDefaults: the schema is the one place
  // defaults live; verbose: errors carry the offending data and schema for the messages.
  compiled ??= schemaValidator('manifest', schema, { allErrors: true, useDefaults: true, verbose: true, strict: true, strictRequired: false, strictTuples: false }, CACHE_DIR);
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
  const problem = describeSchemaError(err);
  const { path } = problem;
  let { expected, found } = problem;
  let code: ErrorCode = 'LM_MANIFEST_INVALID';
  if ((err.keyword === 'minimum' || err.keyword === 'maximum') && path.startsWith('/resources/')) code = 'LM_MANIFEST_LIMIT';
  if (err.keyword === 'false schema') {
    // A field that only belongs to another capability scope (paths on a network capability).
    const field = path.split('/').pop() ?? '';
    expected = `'${field}' only on a capability with scope ${field === 'hosts' ? 'network' : 'filesystem'}`;
    found = `'${field}' on a capability of another scope`;
  }
  return { code, path, expected, found, message: `expected ${expected}, found ${found}` };
}

export { show };
