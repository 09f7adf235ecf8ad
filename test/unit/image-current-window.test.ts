import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Docker } from '../../src/engine/docker.js';
import { contextHash } from '../../src/images/inputs-hash.js';
import { CURRENT_FOR_MS, ensureImage } from '../../src/images/runtime-image.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-current-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.useRealTimers());

/** An engine that has the image `tag` with the inputs hash `hash`, counting its inspects. */
function engine(hash: string): { docker: Docker; inspects: () => number } {
  let n = 0;
  const docker = {
    getImage: () => ({
      inspect: () => {
        n++;
        return Promise.resolve({ Id: 'sha256:abc', Config: { Labels: { [LABEL.inputsHash]: hash } } });
      },
    }),
  } as unknown as Docker;
  return { docker, inspects: () => n };
}

describe('an image found current', () => {
  it('is not checked again for CURRENT_FOR_MS (a burst of starts), and is after', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const contextDir = mkdtempSync(path.join(dir, 'ctx-'));
    writeFileSync(path.join(contextDir, 'Dockerfile'), 'FROM scratch\n');
    const hash = await contextHash({} as Docker, contextDir, {}, 'FROM scratch\n', undefined, null);
    const { docker, inspects } = engine(hash);
    const def = { tag: 'logomesh/test-current-window:latest', contextDir };
    for (let i = 0; i < 20; i++) expect(await ensureImage(docker, def, { log: silentLogger })).toMatchObject({ id: 'sha256:abc', built: false });
    expect(inspects()).toBe(1);
    vi.advanceTimersByTime(CURRENT_FOR_MS);
    await ensureImage(docker, def, { log: silentLogger });
    expect(inspects()).toBe(2);
  });
});
