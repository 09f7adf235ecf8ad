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
    case 'additionalProperties': {
      const known = Object.keys(parent?.properties ?? {});
      path = `${base}/${String(p.additionalProperty)}`;
      expected = `one of the known fields (${known.join(', ')})`;
      found = `unknown field '${String(p.additionalProperty)}'${didYouMean(String(p.additionalProperty), known)}`;
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

/**
 * The known name closest to a misspelled one, for "did you mean": within a quarter of its
 * length in edits (at least one), case aside. Undefined when nothing is that close.
 */
export function closest(name: string, known: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.floor(name.length / 4));
  let best: { name: string; distance: number } | undefined;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d <= limit && (!best || d < best.distance)) best = { name: k, distance: d };
  }
  return best?.name;
}

/** Levenshtein distance, two rows at a time; names are short. */
function distance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** ` (did you mean 'x'?)`, or nothing. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const c = closest(name, known);
  return c === undefined || c === name ? '' : ` (did you mean '${c}'?)`;
}
