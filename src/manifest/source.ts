import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/**
 * A parsed manifest document that can answer "where in the file is this JSON pointer?", so
 * every error can name a line and column as well as the field.
 */
export interface ManifestSource {
  readonly value: unknown;
  readonly errors: readonly { message: string; path: string; line?: number; column?: number; kind: string }[];
  locate(pointer: string): { line: number; column: number } | undefined;
}

export function parseManifestSource(text: string): ManifestSource {
  const lineCounter = new LineCounter();
  // JSON is YAML 1.2, so one parser serves both formats and both get duplicate-key errors
  // (JSON.parse silently keeps the last duplicate).
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const pos = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const errors = doc.errors.map((e) => ({
    message: e.message.split('\n')[0] ?? e.message,
    kind: e.code,
    path: pointerAtOffset(doc, e.pos[0]),
    ...pos(e.pos[0]),
  }));
  let value: unknown;
  if (errors.length === 0) value = doc.toJS({ maxAliasCount: 50 });
  return {
    value,
    errors,
    locate(pointer) {
      const offset = offsetOfPointer(doc, pointer);
      return offset === undefined ? undefined : pos(offset);
    },
  };
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

/** JSON pointer of the innermost key or item that starts at or encloses `offset`. */
function pointerAtOffset(doc: Document, offset: number): string {
  let best = '';
  const visit = (node: unknown, path: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const childPath = `${path}/${encodeSegment(String(pair.key.value))}`;
        const keyRange = pair.key.range;
        const valueRange = (pair.value as Node | null)?.range;
        const end = valueRange?.[2] ?? keyRange?.[2] ?? -1;
        if (keyRange && offset >= keyRange[0] && offset <= end) {
          best = childPath;
          visit(pair.value, childPath);
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const r = (item as Node | null)?.range;
        if (r && offset >= r[0] && offset <= r[2]) {
          best = `${path}/${i}`;
          visit(item, `${path}/${i}`);
        }
      });
    }
  };
  visit(doc.contents, '');
  return best;
}
