import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';

const DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));
const CODES = Object.keys(ERROR_CODES);

function readDoc(): string {
  expect(existsSync(DOC), `${DOC} should document every error code`).toBe(true);
  return readFileSync(DOC, 'utf8');
}

/** Lines that can define a code: Markdown headings and table rows. */
function definingLines(markdown: string): string[] {
  return markdown.split('\n').filter((line) => /^ {0,3}#{1,6}\s/.test(line) || line.includes('|'));
}

/** The code as a whole word: LM_MANIFEST_PATH must not count as found inside LM_MANIFEST_PATHS. */
function mentions(line: string, code: string): boolean {
  return new RegExp(`(?<![A-Za-z0-9_])${code}(?![A-Za-z0-9_])`).test(line);
}

/** Every LM_* code the text mentions; a prefix written as a wildcard (`LM_MANIFEST_*`) is not one. */
function mentionedCodes(markdown: string): string[] {
  const found = new Set<string>();
  for (const m of markdown.matchAll(/(?<![A-Za-z0-9_])LM_[A-Z0-9_]+(\*?)/g)) {
    if (m[1] !== '*') found.add(m[0]);
  }
  return [...found];
}

describe('docs/errors.md', () => {
  it.each(CODES)('documents %s in a heading or a table row', (code) => {
    const lines = definingLines(readDoc());
    expect(lines.some((line) => mentions(line, code))).toBe(true);
  });

  it('mentions no LM_* code that src/errors.ts does not define', () => {
    const unknown = mentionedCodes(readDoc()).filter((code) => !CODES.includes(code));
    expect(unknown).toEqual([]);
  });

  it('writes no wildcard that matches no code', () => {
    const prefixes = [...readDoc().matchAll(/(?<![A-Za-z0-9_])(LM_[A-Z0-9_]*)\*/g)].map((m) => m[1] ?? '');
    for (const prefix of prefixes) expect(CODES.some((code) => code.startsWith(prefix))).toBe(true);
  });
});

describe('the helpers of this test', () => {
  it('find a code only as a whole word, in headings and table rows', () => {
    const md = '# Errors\n\n## LM_USAGE\ntext LM_ENGINE_ERROR\n| `LM_IMAGE_BUILD` | build failed |\nLM_USAGES';
    const lines = definingLines(md);
    expect(lines.some((l) => mentions(l, 'LM_USAGE'))).toBe(true);
    expect(lines.some((l) => mentions(l, 'LM_IMAGE_BUILD'))).toBe(true);
    expect(lines.some((l) => mentions(l, 'LM_ENGINE_ERROR'))).toBe(false);
    expect(mentionedCodes(`${md}\nSee LM_MANIFEST_* and LM_NOPE.`).sort()).toEqual(['LM_ENGINE_ERROR', 'LM_IMAGE_BUILD', 'LM_NOPE', 'LM_USAGE', 'LM_USAGES']);
  });
});
