import { describe, expect, it } from 'vitest';
import { controllerOptionsFromEnv } from '../../src/controller/env.js';
import { startInLevels } from '../../src/controller/start-all.js';

/** A start that resolves when told to, recording how many run at once. */
function gate() {
  let running = 0;
  let most = 0;
  const started: string[] = [];
  const waiting: (() => void)[] = [];
  const start = (id: string) =>
    new Promise<void>((resolve, reject) => {
      running++;
      most = Math.max(most, running);
      started.push(id);
      waiting.push(() => {
        running--;
        if (id.startsWith('bad')) reject(new Error(`${id} failed`));
        else resolve();
      });
    });
  const releaseAll = async () => {
    while (waiting.length || running) {
      waiting.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { start, releaseAll, started, most: () => most };
}

describe('startInLevels', () => {
  it('starts at most `concurrency` plugins of a level at once, and every one of them', async () => {
    const g = gate();
    const ids = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const done = startInLevels([ids], g.start, () => [], 3);
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual(['p0', 'p1', 'p2']);
    await g.releaseAll();
    await done;
    expect(g.started).toEqual(ids);
    expect(g.most()).toBe(3);
  });

  it('settles the whole level before failing, and names what failed and what was not started', async () => {
    const g = gate();
    const done = startInLevels([['a', 'bad1', 'c'], ['d']], g.start, () => ['d'], 2);
    const caught = done.catch((e: unknown) => e);
    await g.releaseAll();
    const err = (await caught) as Error;
    expect(g.started).toEqual(['a', 'bad1', 'c']);
    expect(err.message).toContain('bad1');
    expect(err.message).toContain('d');
  });
});

describe('LOGOMESH_START_CONCURRENCY', () => {
  it('sets startConcurrency, and refuses what is not a positive whole number', () => {
    expect(controllerOptionsFromEnv({ LOGOMESH_START_CONCURRENCY: '8' }).startConcurrency).toBe(8);
    expect(controllerOptionsFromEnv({}).startConcurrency).toBeUndefined();
    expect(() => controllerOptionsFromEnv({ LOGOMESH_START_CONCURRENCY: '0' })).toThrow(expect.objectContaining({ code: 'LM_USAGE', message: expect.stringContaining('LOGOMESH_START_CONCURRENCY') }));
  });
});
