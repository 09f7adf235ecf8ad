import { createRequire } from 'node:module';
import type Docker from 'dockerode';
import { LogoMeshError } from '../errors.js';
import { deferUnusedDockerodeParts } from './deferred-modules.js';

export type { Docker };

// dockerode is loaded when the first client is made, not with this module: the library's
// entry point (and `logomesh validate`, `create`, ...) start without paying for it.
const require = createRequire(import.meta.url);

const PING_TIMEOUT_MS = 5_000;

/** A client for the engine at DOCKER_HOST, or the local socket. */
function dockerClient(): Docker {
  // dockerode reads DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH itself.
  deferUnusedDockerodeParts(require);
  const Dockerode = require('dockerode') as typeof Docker;
  return new Dockerode();
}

/** Connect and check the engine answers; LM_ENGINE_UNAVAILABLE with what to do otherwise. */
export async function connectEngine(docker: Docker = dockerClient()): Promise<Docker> {
  const where = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  try {
    await withTimeout(docker.ping(), PING_TIMEOUT_MS, `no answer within ${PING_TIMEOUT_MS} ms`);
  } catch (err) {
    throw new LogoMeshError(
      'LM_ENGINE_UNAVAILABLE',
      `no Docker engine answers at ${where}: ${errorText(err)}. Run 'npm run provision' (installs and starts Debian's docker.io when run as root), or start Docker and set DOCKER_HOST.`,
      { expected: 'a Docker engine answering a ping', found: errorText(err), endpoint: where },
      { cause: err },
    );
  }
  return docker;
}

/** HTTP status of an engine error (dockerode puts it on `statusCode`). */
export function engineStatus(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export function errorText(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message;
  return err instanceof Error ? err.message : String(err);
}

/** Wrap an engine failure as LM_ENGINE_ERROR naming the operation. */
export function engineError(operation: string, err: unknown, details: Record<string, unknown> = {}): LogoMeshError {
  return new LogoMeshError('LM_ENGINE_ERROR', `Docker engine failed to ${operation}: ${errorText(err)}`, {
    ...details,
    operation,
    status: engineStatus(err),
  }, { cause: err });
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
