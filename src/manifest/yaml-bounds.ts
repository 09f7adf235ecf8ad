import { CST, Lexer } from 'yaml';

/**
 * The text's shape is bounded before the YAML library builds anything from it. Its composer
 * recurses once per level of nesting: a few hundred levels of `[` exhaust the stack, and a
 * second such file in the same process has crashed Node outright ("RegExpCompiler
 * Allocation failed - process out of memory"), which no try/catch can stop. Its CST parser
 * does not recurse, but holds 300 MB for 256 KiB of `[` or of stray `]`, and it checks
 * duplicate keys pairwise (quadratic in a mapping's size). So two checks run first: the
 * lexer (flat, a few MB) finds flow nesting, runs of block indicators on one line,
 * unmatched closing brackets, oversized flow collections and repeated directives; the CST, walked without recursion, finds what indentation
 * nests and collections too large for any manifest. Only then is the document composed.
 */

/** Deeper than any manifest or policy needs (a manifest has four levels). */
export const MAX_DEPTH = 32;
/** Items of one list or mapping: above every schema's maxItems (1024 at most). */
const MAX_ITEMS = 4096;

export interface ShapeProblem {
  readonly expected: string;
  readonly found: string;
}

const TOO_DEEP: ShapeProblem = { expected: `at most ${MAX_DEPTH} levels of nesting (a manifest has four)`, found: `nesting deeper than ${MAX_DEPTH} levels` };

/** The first problem the lexer's tokens show, with its line (1-based), or undefined. */
export function lexicalProblem(text: string): (ShapeProblem & { line: number }) | undefined {
  let line = 1;
  let flow = 0;
  let indicatorsOnLine = 0;
  let directives = 0;
  // Commas of each open flow collection: a broken one of 100,000 items costs the composer
  // an error per item, so its size is bounded here, where no item is built yet.
  const commas: number[] = [];
  for (const token of new Lexer().lex(text)) {
    switch (CST.tokenType(token)) {
      case 'flow-map-start':
      case 'flow-seq-start':
        if (++flow > MAX_DEPTH) return { ...TOO_DEEP, line };
        commas.push(0);
        break;
      case 'flow-map-end':
      case 'flow-seq-end':
        // The library reports each stray closer as one error, and 256 KiB of them cost it
        // seconds and hundreds of MB; the first one is the error to fix.
        if (--flow < 0) return { expected: 'well-formed YAML or JSON', found: `a '${token}' that closes nothing`, line };
        commas.pop();
        break;
      case 'comma':
        if (commas.length > 0 && ++(commas[commas.length - 1] as number) >= MAX_ITEMS) {
          return { expected: `at most ${MAX_ITEMS} items in one list or mapping`, found: `more than ${MAX_ITEMS} items`, line };
        }
        break;
      case 'directive-line':
        // Only `%YAML 1.2` is accepted, once; each directive line costs the composer a document.
        if (++directives > 1) return { expected: 'at most one directive (%YAML 1.2)', found: 'a second directive', line };
        break;
      case 'newline':
        line++;
        indicatorsOnLine = 0;
        break;
      case 'seq-item-ind':
      case 'explicit-key-ind':
      case 'map-value-ind':
        // `- - - - x` and `? ? ? x` nest on one line; in flow context a `:` nests nothing.
        if (flow === 0 && ++indicatorsOnLine > MAX_DEPTH) return { ...TOO_DEEP, line };
        break;
      default:
        // A scalar's text (multi-line ones included) or a comment: count its line breaks.
        for (let i = token.indexOf('\n'); i !== -1; i = token.indexOf('\n', i + 1)) line++;
    }
  }
  return undefined;
}

type Collection = CST.BlockMap | CST.BlockSequence | CST.FlowCollection;

/** The first problem of the CST's collections, with its offset, or undefined. */
export function cstProblem(tokens: readonly CST.Token[]): (ShapeProblem & { offset: number }) | undefined {
  const stack: { token: CST.Token | null | undefined; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop() as { token: CST.Token | null | undefined; depth: number };
    if (!token) continue;
    if (token.type === 'document') {
      stack.push({ token: token.value, depth });
      continue;
    }
    if (!CST.isCollection(token)) continue;
    const collection = token as Collection;
    if (depth + 1 > MAX_DEPTH) return { ...TOO_DEEP, offset: collection.offset };
    if (collection.items.length > MAX_ITEMS) {
      return { expected: `at most ${MAX_ITEMS} items in one list or mapping`, found: `${collection.items.length} items`, offset: collection.offset };
    }
    for (const item of collection.items) {
      if ('key' in item) stack.push({ token: item.key, depth: depth + 1 });
      stack.push({ token: item.value, depth: depth + 1 });
    }
  }
  return undefined;
}
