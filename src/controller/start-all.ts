import { LogoMeshError } from '../errors.js';

/**
 * Start plugins a dependency level at a time, each level in parallel (at most `concurrency`
 * starts at once), stopping at the first level with a failure. The first failure keeps its
 * own code (LM_START_TIMEOUT, LM_IMAGE_BUILD, ...); the message adds what else failed and
 * what was not started because of it (`notStarted`, asked once the starts are over).
 */
export async function startInLevels(levels: readonly (readonly string[])[], start: (id: string) => Promise<void>, notStarted: () => string[], concurrency = Infinity): Promise<void> {
  const failures: { id: string; error: unknown }[] = [];
  for (const level of levels) {
    const results = await settleAll(level, start, concurrency);
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

/**
 * Run `fn` on every item, at most `limit` at a time, in order; settle all. A start is
 * bounded by its own timeout from its container's start: two hundred plugins booting at
 * once on a small host would miss theirs, and the engine gains nothing from more at once.
 */
async function settleAll<T>(items: readonly T[], fn: (item: T) => Promise<void>, limit: number): Promise<PromiseSettledResult<void>[]> {
  const results: PromiseSettledResult<void>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!).then(
        () => ({ status: 'fulfilled', value: undefined }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
