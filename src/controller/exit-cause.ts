import type { ErrorCode } from '../errors.js';
import type { Managed } from './managed.js';

/** Failures a caller is told about instead of a bare LM_PLUGIN_EXITED. */
const TOLD: ReadonlySet<string> = new Set(['LM_RESOURCE_MEMORY', 'LM_PLUGIN_EXITED', 'LM_SECCOMP_VIOLATION', 'LM_RESOURCE_EXCEEDED']);

/**
 * Why a plugin's hub connection just closed, as the supervisor finds out from the engine
 * (its container killed for memory: LM_RESOURCE_MEMORY; by seccomp; an exit code), for the
 * hub to fail the calls waiting on it with. Resolves once the supervisor has recorded a new
 * failure, or with undefined when it does not within `timeoutMs` (the hub then says
 * LM_PLUGIN_EXITED): the connection can close without the container ending.
 */
export async function exitCause(m: Managed | undefined, timeoutMs: number): Promise<{ code: ErrorCode; message: string } | undefined> {
  if (!m?.container) return undefined;
  const before = m.lastError;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = m.lastError;
    if (now && now !== before && TOLD.has(now.code)) return { code: now.code as ErrorCode, message: now.message };
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}
