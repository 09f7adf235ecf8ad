import { Composer, isMap, isPair, isScalar, isSeq, LineCounter, Parser, YAMLParseError, type CST, type Document, type Node } from 'yaml';
import { cstProblem, lexicalProblem, MAX_DEPTH, type ShapeProblem } from './yaml-bounds.js';
import { checkFeatures, MAX_FEATURE_ISSUES, notPlainData } from './yaml-features.js';

/**
 * A parsed manifest document that can answer "where in the file is this JSON pointer?", so
 * every error can name a line and column as well as the field.
 */
export interface ManifestSource {
  readonly value: unknown;
  readonly errors: readonly SourceError[];
  locate(pointer: string): { line: number; column: number } | undefined;
}

/** Why the text is not a manifest-shaped document: what was expected and what was found. */
export interface SourceError {
  readonly message: string;
  readonly path: string;
  readonly line?: number;
  readonly column?: number;
  /** The YAML library's error code, or LogoMesh's name for the check (FEATURE, JSON...). */
  readonly kind: string;
  readonly expected: string;
  readonly found: string;
}

export interface SourceOptions {
  /** The file is named *.json: it must also be strict JSON, and mean the same read as either. */
  readonly json?: boolean;
}

/**
 * The parser's settings, chosen so the text has one reading: YAML 1.2 with the core schema
 * whatever a %YAML directive says (directives other than %YAML 1.2 are refused below), none
 * of the YAML 1.1 tags (!!omap, !!set, !!binary, !!timestamp) and no `<<` merge keys.
 * prettyErrors stays off: it formats a source excerpt into every error, and a hostile
 * file can have 60,000 errors (4 s of formatting here); lines come from the LineCounter.
 */
const PARSE_OPTIONS = {
  version: '1.2',
  schema: 'core',
  resolveKnownTags: false,
  merge: false,
  uniqueKeys: true,
  strict: true,
  prettyErrors: false,
} as const;

const WELL_FORMED = 'well-formed YAML or JSON with unique keys';

export function parseManifestSource(raw: string, options: SourceOptions = {}): ManifestSource {
  // YAML 1.2 and JSON both allow LF, CRLF and a bare CR as line breaks; the YAML library
  // only knows the first two. Line breaks are normalised in YAML content anyway, so this
  // changes no value, and lines are counted as an editor counts them.
  const text = raw.replace(/\r\n?/g, '\n');
  const lineCounter = new LineCounter();
  const pos = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const refuse = (problem: ShapeProblem, at: { line: number; column: number }): ManifestSource => {
    const { expected, found } = problem;
    return failed([{ message: `expected ${expected}, found ${found}`, kind: 'SHAPE', path: '', ...at, expected, found }]);
  };
  let doc: Document;
  try {
    const lexical = lexicalProblem(text);
    if (lexical) return refuse(lexical, { line: lexical.line, column: 1 });
    const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text));
    const shape = cstProblem(tokens);
    if (shape) return refuse(shape, pos(shape.offset));
    doc = compose(tokens, text.length);
  } catch (err) {
    // The library reports its own limits as errors; anything it throws is still ours to code.
    const found = `the YAML parser failed: ${(err as Error).message}`;
    return failed([{ message: found, kind: 'PARSER', path: '', line: 1, column: 1, expected: WELL_FORMED, found }]);
  }
  // Every warning is refused too (an unknown directive...), but an unresolved tag is left
  // to checkFeatures, which refuses every tag, resolved or not, in the author's spelling.
  const warnings = doc.warnings.filter((w) => w.code !== 'TAG_RESOLVE_FAILED');
  const errors: SourceError[] = [...doc.errors, ...warnings].slice(0, MAX_FEATURE_ISSUES).map((e) => {
    const message = e.code === 'RESOURCE_EXHAUSTION' ? `nesting too deep to parse (${firstLine(e.message)})` : firstLine(e.message);
    // A second document is about the whole file, not the field its separator follows.
    const pointer = e.code === 'MULTIPLE_DOCS' ? '' : pointerAtOffset(doc, e.pos[0]);
    return { message, kind: e.code, path: pointer, ...pos(e.pos[0]), expected: WELL_FORMED, found: message };
  });
  const dropped = doc.errors.length + warnings.length - errors.length;
  if (dropped > 0) {
    const last = errors.at(-1);
    const found = `${dropped} more parse error(s) after these`;
    errors.push({ message: found, kind: 'MORE', path: '', line: last?.line, column: last?.column, expected: WELL_FORMED, found });
  }
  errors.push(...directiveErrors(doc, text, pos));
  if (doc.errors.length === 0) {
    for (const f of checkFeatures(doc)) {
      errors.push({ message: `expected ${f.expected}, found ${f.found}`, kind: 'FEATURE', path: f.path, ...pos(f.offset), expected: f.expected, found: f.found });
    }
  }
  let value: unknown;
  if (errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 0 });
    } catch (err) {
      const found = `a document that cannot be read as data (${(err as Error).message})`;
      errors.push({ message: found, kind: 'FEATURE', path: '', line: 1, column: 1, expected: WELL_FORMED, found });
    }
  }
  if (errors.length === 0) {
    const bad = notPlainData(value);
    if (bad) {
      const expected = 'plain data (mappings, lists, strings, finite numbers, true, false, null)';
      errors.push({ message: `expected ${expected}, found ${bad.found}`, kind: 'FEATURE', path: bad.path, line: 1, column: 1, expected, found: bad.found });
    }
  }
  const locate = (pointer: string) => {
    const offset = offsetOfPointer(doc, pointer);
    return offset === undefined ? undefined : pos(offset);
  };
  if (errors.length === 0 && options.json) errors.push(...jsonErrors(raw, value).map((e) => ({ ...locate(e.path), ...e })));
  return errors.length ? { value: undefined, errors, locate } : { value, errors, locate };
}

/** What parseDocument does, from tokens already checked: the first document, and an error for any other. */
function compose(tokens: readonly CST.Token[], length: number): Document {
  let doc: Document | undefined;
  for (const next of new Composer(PARSE_OPTIONS).compose(tokens, true, length)) {
    if (!doc) doc = next;
    else {
      doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents'));
      break;
    }
  }
  // compose(..., forceDoc = true) always yields a document, an empty one for empty text.
  return doc as Document;
}

function failed(errors: SourceError[]): ManifestSource {
  return { value: undefined, errors, locate: () => undefined };
}

/** The library's message without the " at line 3, column 5:" and source excerpt prettyErrors adds. */
function firstLine(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

/** Directives other than `%YAML 1.2`: another version would change how values are typed. */
function directiveErrors(doc: Document, text: string, pos: (offset: number) => { line: number; column: number }): SourceError[] {
  const errors: SourceError[] = [];
  const at = (name: string) => {
    const m = new RegExp(`^%${name}\\b`, 'm').exec(text);
    return pos(m?.index ?? 0);
  };
  const yaml = doc.directives?.yaml;
  if (yaml?.explicit && yaml.version !== '1.2') {
    const found = `%YAML ${yaml.version}`;
    const expected = 'YAML 1.2 (no %YAML directive, or %YAML 1.2)';
    errors.push({ message: `expected ${expected}, found ${found}`, kind: 'DIRECTIVE', path: '', ...at('YAML'), expected, found });
  }
  const tags = Object.keys(doc.directives?.tags ?? {}).filter((handle) => handle !== '!!' || doc.directives?.tags[handle] !== 'tag:yaml.org,2002:');
  if (tags.length > 0) {
    const found = `%TAG ${tags.join(', ')}`;
    const expected = 'no %TAG directive (tags are not accepted)';
    errors.push({ message: `expected ${expected}, found ${found}`, kind: 'DIRECTIVE', path: '', ...at('TAG'), expected, found });
  }
  return errors;
}

/**
 * A .json file is read by the YAML parser (for duplicate keys and positions), so it is also
 * held to JSON itself, and both readings must agree: what the file means cannot depend on
 * which parser a reader of it uses.
 */
function jsonErrors(raw: string, yamlValue: unknown): SourceError[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    const reason = (err as Error).message;
    const at = /position (\d+)/.exec(reason);
    const offset = at ? Number(at[1]) : 0;
    // Offsets of the raw text; the normalised one has as many lines, each as long or shorter.
    const before = raw.slice(0, offset).split(/\r\n?|\n/);
    const expected = 'strict JSON (no comments, trailing commas or single quotes)';
    return [{ message: `expected strict JSON, found: ${reason}`, kind: 'JSON', path: '', line: before.length, column: (before.at(-1)?.length ?? 0) + 1, expected, found: reason }];
  }
  const differs = firstDifference(parsed, yamlValue, '');
  if (differs === undefined) return [];
  const expected = 'JSON that means the same read as JSON and as YAML 1.2';
  const found = `a value that reads differently at ${differs || '/'}`;
  return [{ message: `expected ${expected}, found ${found}`, kind: 'JSON', path: differs, expected, found }];
}

function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (a === b) return undefined;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return path;
  if (Array.isArray(a) !== Array.isArray(b)) return path;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return path;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return path;
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}/${encodeSegment(k)}`);
    if (d !== undefined) return d;
  }
  return undefined;
}

function decodeSegment(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function encodeSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Offset of the deepest node on the pointer's way that exists (a key if there is one). */
function offsetOfPointer(doc: Document, pointer: string): number | undefined {
  const segments = pointer.split('/').slice(1).map(decodeSegment);
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/**
 * JSON pointer of the innermost key or item that starts at or encloses `offset`, at most
 * MAX_DEPTH levels down (a parse error in absurd nesting needs no longer pointer).
 */
function pointerAtOffset(doc: Document, offset: number): string {
  let best = '';
  const visit = (node: unknown, path: string, depth = 0): void => {
    if (depth > MAX_DEPTH) return;
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const childPath = `${path}/${encodeSegment(String(pair.key.value))}`;
        const keyRange = pair.key.range;
        const valueRange = (pair.value as Node | null)?.range;
        const end = valueRange?.[2] ?? keyRange?.[2] ?? -1;
        if (keyRange && offset >= keyRange[0] && offset <= end) {
          best = childPath;
          visit(pair.value, childPath, depth + 1);
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const r = (item as Node | null)?.range;
        if (r && offset >= r[0] && offset <= r[2]) {
          best = `${path}/${i}`;
          visit(item, `${path}/${i}`, depth + 1);
        }
      });
    }
  };
  visit(doc.contents, '');
  return best;
}
