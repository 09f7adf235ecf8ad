import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { consoleAddress } from './address.js';
import type { ConsoleHost } from './host.js';
import { startConsole, type ConsoleEndpoint } from './server.js';

/** The operator's console token (actions allowed), 16+ characters; default random, written to <home>/console.token. */
export const CONSOLE_TOKEN_ENV = 'LOGOMESH_CONSOLE_TOKEN';
/** The read-only token; default random, written to <home>/console-viewer.token. */
export const CONSOLE_VIEWER_TOKEN_ENV = 'LOGOMESH_CONSOLE_VIEWER_TOKEN';
/** 0: every login is read-only, whatever its token. */
export const CONSOLE_ACTIONS_ENV = 'LOGOMESH_CONSOLE_ACTIONS';

export function consoleTokenFiles(homeDir: string): { operator: string; viewer: string } {
  return { operator: path.join(homeDir, 'console.token'), viewer: path.join(homeDir, 'console-viewer.token') };
}

function token(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (v === undefined || v === '') return randomBytes(24).toString('base64url');
  if (!/^[\x21-\x7e]{16,256}$/.test(v)) {
    throw new LogoMeshError('LM_CONSOLE_ENDPOINT', `${name} must be 16 to 256 printable characters without spaces`, { path: name, expected: '16 to 256 printable ASCII characters', found: `${v.length} characters` });
  }
  return v;
}

/**
 * Start the console when LOGOMESH_CONSOLE asks for it (off by default), writing its two
 * tokens into the home (0600, like the hub token) so the operator can read them. Returns
 * undefined when it is off. Throws LM_CONSOLE_ENDPOINT.
 */
export async function openConsole(host: ConsoleHost, homeDir: string, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<ConsoleEndpoint | undefined> {
  const address = consoleAddress(env);
  if (!address) return undefined;
  const tokens = { operator: token(env, CONSOLE_TOKEN_ENV), viewer: token(env, CONSOLE_VIEWER_TOKEN_ENV) };
  if (tokens.operator === tokens.viewer) throw new LogoMeshError('LM_CONSOLE_ENDPOINT', `${CONSOLE_TOKEN_ENV} and ${CONSOLE_VIEWER_TOKEN_ENV} must differ`, { path: CONSOLE_VIEWER_TOKEN_ENV, expected: 'a token other than the operator token' });
  const files = consoleTokenFiles(homeDir);
  writeFileSync(files.operator, `${tokens.operator}\n`, { mode: 0o600 });
  writeFileSync(files.viewer, `${tokens.viewer}\n`, { mode: 0o600 });
  try {
    const c = await startConsole(host, { address, tokens, actions: env[CONSOLE_ACTIONS_ENV] !== '0', log });
    const close = c.close;
    return { ...c, close: async () => {
      await close();
      for (const f of Object.values(files)) rmSync(f, { force: true });
    } };
  } catch (err) {
    for (const f of Object.values(files)) rmSync(f, { force: true });
    throw err;
  }
}
