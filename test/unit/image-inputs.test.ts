import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Docker } from '../../src/engine/docker.js';
import { contextHash } from '../../src/images/inputs-hash.js';

/** A Dockerfile without FROM: the hash then needs no engine. */
const NO_ENGINE = {} as Docker;
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-inputs-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe("a runtime image's inputs hash", () => {
  it('covers a small extra by its bytes, not its mtime (a copy made by a Docker build keeps whole seconds only)', async () => {
    const context = folder({ Dockerfile: 'COPY protocol /x\n' });
    const a = folder({ 'protocol.json': '{"maxDepth":64}' });
    const b = folder({ 'protocol.json': '{"maxDepth":64}' });
    utimesSync(path.join(b, 'protocol.json'), 1_000_000.5, 1_000_000.5);
    const hashA = await contextHash(NO_ENGINE, context, { protocol: a }, '');
    expect(await contextHash(NO_ENGINE, context, { protocol: b }, '')).toBe(hashA);
    writeFileSync(path.join(b, 'protocol.json'), '{"maxDepth":65}');
    expect(await contextHash(NO_ENGINE, context, { protocol: b }, '')).not.toBe(hashA);
  });
});
