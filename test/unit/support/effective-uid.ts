/**
 * Run `fn` with another effective uid, then take uid 0 back (the real uid stays 0, so it
 * can). For tests run as root that need a read to be refused: root reads a mode-000 file.
 * Only in a process of its own (vitest's forks pool), never in a worker thread.
 */
export function withEffectiveUid<T>(uid: number, fn: () => T): T {
  const { seteuid } = process;
  if (process.getuid?.() !== 0 || !seteuid) throw new Error('withEffectiveUid needs root on a POSIX system');
  seteuid(uid);
  try {
    return fn();
  } finally {
    seteuid(0);
  }
}
