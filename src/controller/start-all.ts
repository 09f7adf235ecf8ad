import { LogoMeshError } from '../errors.js';

/**
 * Start plugins a dependency level at a time, each level in parallel, stopping at the first
 * level with a failure. The first failure keeps its own code (LM_START_TIMEOUT,
 * LM_IMAGE_BUILD, ...); the message adds what else failed and what was not started
 * because of it (`notStarted`, asked once the starts are over).
 */
export async function startInLevels(levels: readonly (readonly string[])[], start: (id: string) => Promise<void>, notStarted: () => string[]): Promise<void> {
  const failures: { id: string; error: unknown }[] = [];
  for (const level of levels) {
    const results = await Promise.allSettled(level.map((id) => start(id)));
    results.forEach((r, i) => {
      if (r.status === 'rejected') failures.push({ id: level[i]!, error: r.reason });
    });
    if (failures.length) break;
  }
  const first = failures[0];
  if (!first) return;
  const waiting = notStarted();
  const others = failures.slice(1).map((f) => `${f.id}: ${(f.error as Error).message}`);
  const e = first.error instanceof LogoMeshError ? first.error : new LogoMeshError('LM_ENGINE_ERROR', String((first.error as Error)?.message ?? first.error), {});
  throw new LogoMeshError(
    e.code,
    `plugin ${first.id} failed to start: ${e.message}${others.length ? `\nalso failed:\n${others.join('\n')}` : ''}${waiting.length ? `\nnot started: ${waiting.join(', ')}` : ''}`,
    { ...e.details, plugin: first.id, notStarted: waiting, alsoFailed: failures.slice(1).map((f) => f.id) },
    { cause: e },
  );
}
