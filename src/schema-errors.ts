import type { ErrorObject } from 'ajv';

/** One JSON Schema failure in words: the field's JSON pointer, what was expected and found. */
export interface SchemaProblem {
  readonly path: string;
  readonly expected: string;
  readonly found: string;
}

/**
 * Turn an ajv error (compiled with `verbose: true`) into words a person can act on. Shared
 * by every schema LogoMesh validates (manifests, the operator policy) so they all read alike.
 */
export function describeSchemaError(err: ErrorObject): SchemaProblem {
  const base = err.instancePath;
  const p = err.params as Record<string, unknown>;
  const parent = err.parentSchema as { description?: string; minimum?: number; maximum?: number; properties?: object } | undefined;
  let path = base;
  let expected: string;
  // Only where it is the thing found: for an unknown field, err.data is the whole parent
  // object, and rendering it for each of thousands of unknown fields is quadratic.
  let found: string | undefined;
  switch (err.keyword) {
    case 'required':
      path = `${base}/${String(p.missingProperty)}`;
      expected = `the required field '${String(p.missingProperty)}'`;
      found = 'it is missing';
      break;
    case 'additionalProperties':
      path = `${base}/${String(p.additionalProperty)}`;
      expected = `one of the known fields (${Object.keys(parent?.properties ?? {}).join(', ')})`;
      found = `unknown field '${String(p.additionalProperty)}'`;
      break;
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
    case 'maximum':
      expected = `an integer from ${parent?.minimum} to ${parent?.maximum}`;
      break;
    case 'minItems':
    case 'maxItems':
      expected = `${err.keyword === 'minItems' ? 'at least' : 'at most'} ${String(p.limit)} item(s)`;
      found = `${(err.data as unknown[]).length} item(s)`;
      break;
    case 'uniqueItems':
      expected = 'no duplicate items';
      found = `items ${String(p.j)} and ${String(p.i)} are equal`;
      break;
    case 'minLength':
      expected = `at least ${String(p.limit)} character(s)`;
      break;
    case 'maxLength':
      expected = `at most ${String(p.limit)} character(s)`;
      found = `${String(err.data).length} characters`;
      break;
    case 'propertyNames':
      expected = 'plugin ids as keys (lowercase letters, digits and inner hyphens)';
      found = `the key ${JSON.stringify(p.propertyName)}`;
      break;
    default:
      expected = err.message ?? err.keyword;
  }
  return { path, expected, found: found ?? show(err.data) };
}

/** A short, typed rendering of a found value: `"abc" (string)`, `42 (number)`. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  const kind = Array.isArray(value) ? 'array' : typeof value;
  let text = preview(value, 61);
  if (text.length > 60) text = `${text.slice(0, 57)}...`;
  return `${text} (${kind})`;
}

/** JSON of `value`, built only as far as `limit` characters (a value can be 256 KiB). */
function preview(value: unknown, limit: number): string {
  if (typeof value === 'string') return JSON.stringify(value.length > limit ? value.slice(0, limit) : value);
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? String(value);
  const array = Array.isArray(value);
  let text = array ? '[' : '{';
  for (const [k, v] of Object.entries(value)) {
    if (text.length > limit) break;
    if (text.length > 1) text += ',';
    text += (array ? '' : `${JSON.stringify(k.slice(0, limit))}:`) + preview(v, Math.max(0, limit - text.length));
  }
  return text + (array ? ']' : '}');
}
