import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, tempDir } from './support.js';

/** The expected results, computed here independently of the plugins. */
function tokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
}

function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

interface Analysis {
  thoughts: { text: string; tokens: number; digest: string }[];
  topWords: [string, number][];
  added: number;
}

describe('the four example plugins (node, go, rust, python) cooperate', () => {
  let host: Controller;
  beforeAll(async () => {
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-examples` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), startTimeoutMs: 60_000 });
    host.loadDirectory(path.join(REPO, 'manifests'));
    await host.startAll();
  });
  afterAll(async () => {
    await host?.close();
  });

  it('all four come up, dependencies first', () => {
    expect(host.list().map((p) => `${p.id}:${p.runtime}:${p.state}`)).toEqual(['analyzer:python:ready', 'hasher:rust:ready', 'thoughts:node:ready', 'tokenizer:go:ready']);
  });

  it('analyzer.analyze_results returns the right analysis', async () => {
    const { thoughts } = (await host.call('thoughts', 'get_thoughts', {})) as { thoughts: string[] };
    expect(thoughts.length).toBeGreaterThanOrEqual(3);
    const result = (await host.call('analyzer', 'analyze_results', {})) as Analysis;
    expect(result.thoughts).toEqual(thoughts.map((text) => ({ text, tokens: tokens(text).length, digest: fnv1a64(text) })));
    const counts = new Map<string, number>();
    for (const t of thoughts) for (const w of tokens(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5);
    expect(result.topWords).toEqual(top);
  });

  it('a thought added through the host reaches the analyzer as an event', async () => {
    const before = ((await host.call('analyzer', 'analyze_results', {})) as Analysis).added;
    expect(await host.call('thoughts', 'add_thought', { text: 'Événements arrivent: déjà vu!' })).toMatchObject({ count: expect.any(Number) });
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = ((await host.call('analyzer', 'analyze_results', {})) as Analysis).added;
    }
    expect(after).toBe(before + 1);
    const result = (await host.call('analyzer', 'analyze_results', {})) as Analysis;
    expect(result.thoughts.at(-1)).toEqual({ text: 'Événements arrivent: déjà vu!', tokens: 4, digest: fnv1a64('Événements arrivent: déjà vu!') });
  });

  it('plugin methods refuse bad arguments with LM_INVALID_ARGUMENT', async () => {
    await expect(host.call('tokenizer', 'tokenize', { text: 42 })).rejects.toMatchObject({ code: 'LM_INVALID_ARGUMENT' });
    await expect(host.call('hasher', 'digest', {})).rejects.toMatchObject({ code: 'LM_INVALID_ARGUMENT' });
    await expect(host.call('thoughts', 'add_thought', { text: '' })).rejects.toMatchObject({ code: 'LM_INVALID_ARGUMENT' });
  });
});
