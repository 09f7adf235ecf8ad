import { spawnSync } from 'node:child_process';

/**
 * kubectl against the cluster KUBECONFIG names, bounded in time. The cluster tests drive the
 * cluster only through it: what they check is what an operator's `kubectl apply` gets.
 */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function kubectl(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Ran {
  const r = spawnSync('kubectl', [...args], { input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`kubectl ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** kubectl that must succeed; its stdout. */
export function kubectlOk(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = kubectl(args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

/** kubectl get -o json, parsed. */
export function getJson<T = Record<string, unknown>>(args: readonly string[]): T {
  return JSON.parse(kubectlOk(['get', ...args, '-o', 'json'])) as T;
}

/** Poll `check` until it returns a value (not undefined), at most `timeoutMs`; the last error explains a timeout. */
export async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 180_000, everyMs = 2_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
