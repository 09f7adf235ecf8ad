import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { manifestSchema } from '../../src/manifest/index.js';

/**
 * docs/manifest.md once gave maxFileHandles a maximum of 65536 where the schema said 16384.
 * The resources table is checked against the schema, so the two cannot drift apart again.
 */

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/manifest.md');

interface Bounds {
  minimum: number;
  maximum: number;
  default: number;
}

/** `| \`field\` | min | max | default | ...` rows of the resources table. */
function documentedResources(): Record<string, Bounds> {
  const text = readFileSync(DOC, 'utf8');
  const section = text.slice(text.indexOf('\n## resources\n'), text.indexOf('\n## dependencies\n'));
  const rows: Record<string, Bounds> = {};
  for (const m of section.matchAll(/^\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \|/gm)) {
    rows[m[1] as string] = { minimum: Number(m[2]), maximum: Number(m[3]), default: Number(m[4]) };
  }
  return rows;
}

describe('docs/manifest.md', () => {
  it('gives every resource the bounds and default of the schema', () => {
    const properties = (manifestSchema as { properties: { resources: { properties: Record<string, Bounds & { type: string }> } } }).properties.resources.properties;
    const schema = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, { minimum: v.minimum, maximum: v.maximum, default: v.default }]));
    expect(Object.keys(schema).length).toBeGreaterThanOrEqual(6);
    expect(documentedResources()).toEqual(schema);
  });
});
