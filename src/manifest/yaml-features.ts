import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import { MAX_DEPTH } from './yaml-bounds.js';

/**
 * The closed set of YAML a manifest (or a policy) may use: mappings with string keys,
 * sequences, and strings, finite numbers, booleans and null. No tags, anchors or aliases,
 * no complex or non-string keys, no NaN or infinity, at most MAX_DEPTH levels of nesting.
 * Everything else is refused here, at its place in the file, before any value is built:
 * what is not in the set can neither reach the schema check nor crash what follows it.
 */

/** Enough to show a pattern; a file with more gets one more line saying how many. */
export const MAX_FEATURE_ISSUES = 20;

export interface FeatureIssue {
  /** Offset in the parsed text, for the line and column. */
  readonly offset: number;
  /** JSON pointer of the value (or the key) it is about. */
  readonly path: string;
  readonly expected: string;
  readonly found: string;
}

const PLAIN = 'plain data: mappings with string keys, lists, strings, finite numbers, true, false and null';

export function checkFeatures(doc: Document): FeatureIssue[] {
  const issues: FeatureIssue[] = [];
  let more = 0;
  const add = (node: unknown, path: string, expected: string, found: string): void => {
    if (issues.length < MAX_FEATURE_ISSUES) issues.push({ offset: offsetOf(node), path, expected, found });
    else more++;
  };

  const visit = (node: unknown, path: string, depth: number): void => {
    if (node === null || node === undefined) return; // an empty value: null
    if (isAlias(node)) return add(node, path, 'a value written out (YAML anchors and aliases are not accepted)', `the alias *${node.source}`);
    if (!isScalar(node) && !isMap(node) && !isSeq(node)) return add(node, path, PLAIN, 'a YAML node of an unknown kind');
    if (node.anchor) add(node, path, 'no YAML anchors (anchors and aliases are not accepted)', `the anchor &${node.anchor}`);
    if (node.tag) add(node, path, 'no YAML tags (a manifest is plain data; quote a value to make it a string)', `the tag ${shortTag(node.tag)}`);
    if (depth > MAX_DEPTH) return add(node, path, `at most ${MAX_DEPTH} levels of nesting`, 'deeper nesting');
    if (isScalar(node)) return checkScalar(node.value, (found) => add(node, path, PLAIN, found));
    if (isSeq(node)) return node.items.forEach((item, i) => visit(item, `${path}/${i}`, depth + 1));
    const seen = new Set<string>();
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = pair.key;
      if (!isScalar(key) || typeof key.value !== 'string') {
        add(key ?? pair, path, 'a string key (quote a key such as 2048 or true to make it one)', describeKey(key));
        continue;
      }
      if (key.anchor || key.tag) visit(key, `${path}/${escape(key.value)}`, depth + 1);
      const at = `${path}/${escape(key.value)}`;
      if (seen.has(key.value)) add(key, at, 'unique keys', `the key ${JSON.stringify(key.value)} again`);
      seen.add(key.value);
      visit(pair.value, at, depth + 1);
    }
  };
  visit(doc.contents, '', 0);
  if (more > 0) issues.push({ offset: issues.at(-1)?.offset ?? 0, path: '', expected: PLAIN, found: `${more} more value(s) outside it` });
  return issues;
}

function checkScalar(value: unknown, bad: (found: string) => void): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) bad(`${Number.isNaN(value) ? 'NaN (not a number)' : `${value > 0 ? '' : '-'}infinity`}`);
    return;
  }
  bad(`a value of type ${typeof value}`);
}

function describeKey(key: unknown): string {
  if (key === null || key === undefined) return 'an empty key';
  if (isAlias(key)) return `the alias *${key.source} as a key`;
  if (isScalar(key)) return `the key ${String(key.value)} (${key.value === null ? 'null' : typeof key.value})`;
  if (isMap(key)) return 'a mapping as a key';
  if (isSeq(key)) return 'a list as a key';
  return 'a key of an unknown kind';
}

/** `tag:yaml.org,2002:omap` -> `!!omap`, as the author wrote it. */
function shortTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

function offsetOf(node: unknown): number {
  return (node as Node | null | undefined)?.range?.[0] ?? 0;
}

function escape(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Where `value` (a result of the YAML library's toJS) is not plain JSON data: a Map, Set,
 * Date, Buffer or other object, a non-finite number, a function. Undefined when it is.
 * A second line of defence behind checkFeatures: both must hold before the schema runs.
 */
export function notPlainData(value: unknown, path = '', depth = 0): { path: string; found: string } | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : { path, found: String(value) };
  if (typeof value !== 'object') return { path, found: `a value of type ${typeof value}` };
  if (depth > MAX_DEPTH) return { path, found: 'deeper nesting' };
  const proto: unknown = Object.getPrototypeOf(value);
  if (Array.isArray(value) && proto === Array.prototype) {
    for (let i = 0; i < value.length; i++) {
      const bad = notPlainData(value[i], `${path}/${i}`, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  if (proto !== Object.prototype) return { path, found: `a ${(value as object).constructor?.name ?? 'prototype-less'} object` };
  for (const key of Object.keys(value)) {
    const bad = notPlainData((value as Record<string, unknown>)[key], `${path}/${escape(key)}`, depth + 1);
    if (bad) return bad;
  }
  return undefined;
}
