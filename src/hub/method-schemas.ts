import type { ValidateFunction } from 'ajv';
import { methodSchemaCompiler as compiler } from '../manifest/method-schemas.js';
import type { MethodSchemas } from '../manifest/types.js';
import { describeSchemaError } from '../schema-errors.js';

/** A method's compiled schemas. */
export interface MethodValidators {
  readonly params?: ValidateFunction;
  readonly result?: ValidateFunction;
}

/**
 * Compile a manifest's coordination.methodSchemas. Throws ajv's error for a schema that does
 * not compile (the manifest's semantic check reports it first, with its path).
 */
export function compileMethodSchemas(schemas: Readonly<Record<string, MethodSchemas>> | undefined): ReadonlyMap<string, MethodValidators> {
  const out = new Map<string, MethodValidators>();
  for (const [method, s] of Object.entries(schemas ?? {})) {
    out.set(method, {
      ...(s.params !== undefined ? { params: compiler().compile(s.params) } : {}),
      ...(s.result !== undefined ? { result: compiler().compile(s.result) } : {}),
    });
  }
  return out;
}

/** `plugin.method params: /path must be … (found …)`, or undefined when `data` matches. */
export function checkAgainst(validate: ValidateFunction | undefined, data: unknown, what: string): string | undefined {
  if (!validate || validate(data === undefined ? null : data)) return undefined;
  const err = validate.errors?.[0];
  if (!err) return `${what}: does not match its schema`;
  const p = describeSchemaError(err);
  return `${what}: ${p.path || '/'} must be ${p.expected} (found ${p.found})`;
}
