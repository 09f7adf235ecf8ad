import { LogoMeshError } from '../errors.js';

export interface Node {
  readonly id: string;
  readonly dependsOn: readonly string[];
}

/**
 * Start order as levels: every plugin of a level depends only on plugins of earlier levels,
 * so a level starts in parallel. Stop in the reverse order. A missing dependency or a cycle
 * is LM_DEPENDENCY naming the plugins involved.
 */
export function startLevels(nodes: readonly Node[]): string[][] {
  const ids = new Set(nodes.map((n) => n.id));
  const missing = nodes.flatMap((n) => n.dependsOn.filter((d) => !ids.has(d)).map((d) => `${n.id} -> ${d}`));
  if (missing.length) {
    throw new LogoMeshError('LM_DEPENDENCY', `missing plugin dependencies: ${missing.join(', ')}`, {
      expected: 'every plugin under dependencies.plugins to be loaded',
      found: `not loaded: ${missing.join(', ')}`,
      missing,
    });
  }
  const cycle = findCycle(nodes);
  if (cycle) {
    throw new LogoMeshError('LM_DEPENDENCY', `plugin dependencies form a cycle: ${cycle.join(' -> ')}`, {
      expected: 'dependencies.plugins without cycles',
      found: cycle.join(' -> '),
      cycle,
    });
  }
  const level = new Map<string, number>();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    const deps = byId.get(id)?.dependsOn ?? [];
    const d = deps.length ? Math.max(...deps.map(depth)) + 1 : 0;
    level.set(id, d);
    return d;
  };
  const levels: string[][] = [];
  for (const n of [...nodes].sort((a, b) => a.id.localeCompare(b.id))) (levels[depth(n.id)] ??= []).push(n.id);
  return levels;
}

/** Every plugin that depends on `id`, directly or not. */
export function dependentsOf(nodes: readonly Node[], id: string): string[] {
  const out = new Set<string>();
  let frontier = [id];
  while (frontier.length) {
    const next = nodes.filter((n) => n.dependsOn.some((d) => frontier.includes(d)) && !out.has(n.id)).map((n) => n.id);
    next.forEach((n) => out.add(n));
    frontier = next;
  }
  return [...out];
}

function findCycle(nodes: readonly Node[]): string[] | undefined {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const d of byId.get(id)?.dependsOn ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const n of [...nodes].sort((a, b) => a.id.localeCompare(b.id))) {
    const c = visit(n.id);
    if (c) return c;
  }
  return undefined;
}
