import { describe, expect, it } from 'vitest';
import { dependentsOf, startLevels } from '../../src/controller/dependency-graph.js';

const n = (id: string, ...dependsOn: string[]) => ({ id, dependsOn });

describe('dependency graph', () => {
  it('orders plugins in levels that can start in parallel', () => {
    expect(startLevels([n('analyzer', 'thoughts', 'tokenizer', 'hasher'), n('thoughts'), n('tokenizer'), n('hasher')])).toEqual([
      ['hasher', 'thoughts', 'tokenizer'],
      ['analyzer'],
    ]);
    expect(startLevels([n('c', 'b'), n('b', 'a'), n('a')])).toEqual([['a'], ['b'], ['c']]);
  });

  it('refuses a missing dependency, naming both plugins', () => {
    expect(() => startLevels([n('analyzer', 'ghost')])).toThrow(expect.objectContaining({ code: 'LM_DEPENDENCY', message: expect.stringContaining('analyzer -> ghost') }));
  });

  it('refuses a cycle, naming the plugins on it in order', () => {
    expect(() => startLevels([n('a', 'b'), n('b', 'c'), n('c', 'a'), n('d')])).toThrow(
      expect.objectContaining({ code: 'LM_DEPENDENCY', message: 'plugin dependencies form a cycle: a -> b -> c -> a' }),
    );
    expect(() => startLevels([n('self', 'self')])).toThrow(expect.objectContaining({ message: expect.stringContaining('self -> self') }));
  });

  it('finds every plugin that depends on one, directly or not', () => {
    expect(dependentsOf([n('a'), n('b', 'a'), n('c', 'b'), n('d')], 'a').sort()).toEqual(['b', 'c']);
  });
});
