import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Managed } from '../../src/controller/managed.js';
import { COALESCE_MS, SavedState } from '../../src/controller/saved-state.js';
import { silentLogger } from '../../src/log.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-saved-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The fields of a plugin record that SavedState reads. */
function record(id: string, restarts = 0): Managed {
  return { restarts, loaded: { manifest: { id }, hash: `hash-${id}`, pluginDir: `/p/${id}` }, container: { id: `c-${id}` } } as unknown as Managed;
}

let n = 0;
function fresh(): { saved: SavedState; file: string } {
  const file = path.join(dir, `state-${n++}.json`);
  return { saved: new SavedState(file, silentLogger), file };
}

const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { folders: string[]; plugins: Record<string, { restarts: number }> };
const none = () => undefined;

describe('SavedState: the lifecycle saves coalesced', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('a burst of saves is one write, of the plugins as they stand when it is written', () => {
    const { saved, file } = fresh();
    const plugins: Managed[] = [];
    for (let i = 0; i < 200; i++) {
      plugins.push(record(`p${i}`));
      saved.saveSoon(() => plugins, none);
    }
    expect(saved.writes).toBe(0);
    vi.advanceTimersByTime(COALESCE_MS);
    expect(saved.writes).toBe(1);
    expect(Object.keys(onDisk(file).plugins)).toHaveLength(200);
    // The next change after the write is saved again.
    plugins.push(record('late'));
    saved.saveSoon(() => plugins, none);
    vi.advanceTimersByTime(COALESCE_MS);
    expect(saved.writes).toBe(2);
    expect(onDisk(file).plugins.late).toBeDefined();
  });

  it('an immediate save (the operator\'s) writes now and takes the waiting one with it', () => {
    const { saved, file } = fresh();
    saved.saveSoon(() => [record('a', 1)], none);
    saved.save([record('a', 2)], none);
    expect(saved.writes).toBe(1);
    vi.advanceTimersByTime(COALESCE_MS * 2);
    expect(saved.writes).toBe(1);
    expect(onDisk(file).plugins.a?.restarts).toBe(2);
  });

  it('a read sees a save still waiting (written first)', () => {
    const { saved } = fresh();
    saved.saveSoon(() => [record('a', 3)], none);
    expect(saved.read()?.plugins.a?.restarts).toBe(3);
    expect(saved.writes).toBe(1);
  });

  it('a clean stop is not overwritten by a save that was waiting', () => {
    const { saved, file } = fresh();
    saved.saveSoon(() => [record('a', 3)], none);
    saved.keepForNextStart([record('a')], none);
    vi.advanceTimersByTime(COALESCE_MS * 2);
    expect(onDisk(file)).toEqual({ version: 1, folders: ['/p/a'], plugins: {} });
  });

  it('flush writes a waiting save at once (a controller leaving its plugins to the next one)', () => {
    const { saved, file } = fresh();
    saved.saveSoon(() => [record('a', 4)], none);
    saved.flush();
    expect(onDisk(file).plugins.a?.restarts).toBe(4);
    saved.flush();
    expect(saved.writes).toBe(1);
  });
});
