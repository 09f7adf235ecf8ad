import { isIP } from 'node:net';
import { LogoMeshError } from '../errors.js';

/** Where the console listens: `LOGOMESH_CONSOLE=[host:]port`. Unset, empty or `off`: no console (the default). */
export const CONSOLE_ENV = 'LOGOMESH_CONSOLE';
/** Set to 1 to allow an address other than loopback (the console shows every plugin and can act on them). */
export const CONSOLE_PUBLIC_ENV = 'LOGOMESH_CONSOLE_PUBLIC';

export interface ConsoleAddress {
  readonly host: string;
  readonly port: number;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The console's address from the environment, or undefined when it is off. Throws
 * LM_CONSOLE_ENDPOINT for a bad value, or a non-loopback host without LOGOMESH_CONSOLE_PUBLIC=1.
 */
export function consoleAddress(env: NodeJS.ProcessEnv = process.env): ConsoleAddress | undefined {
  const raw = env[CONSOLE_ENV]?.trim();
  if (!raw || raw === 'off') return undefined;
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(raw);
  const host = m?.[1] || '127.0.0.1';
  const port = Number(m?.[2]);
  if (!m || port > 65535 || (host !== 'localhost' && isIP(host) === 0)) {
    throw new LogoMeshError('LM_CONSOLE_ENDPOINT', `${CONSOLE_ENV}=${raw}: expected [host:]port with an IP address or localhost and a port from 0 to 65535, or 'off'`, {
      path: CONSOLE_ENV,
      expected: '[host:]port, such as 7071 or 127.0.0.1:7071',
      found: raw,
    });
  }
  if (!isLoopback(host) && env[CONSOLE_PUBLIC_ENV] !== '1') {
    throw new LogoMeshError('LM_CONSOLE_ENDPOINT', `console ${host}:${port} is not a loopback address; set ${CONSOLE_PUBLIC_ENV}=1 to serve the console beyond this host`, {
      path: CONSOLE_ENV,
      expected: 'a loopback address (127.0.0.1, ::1, localhost)',
      found: host,
    });
  }
  return { host, port };
}
