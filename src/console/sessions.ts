import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LogoMeshError } from '../errors.js';

/** What a session may do: an operator acts, a viewer only looks. */
export type Role = 'operator' | 'viewer';

export interface Session {
  readonly id: string;
  /** The operator's name given at login: the audit trail's `who` is `operator (<name>)`. */
  readonly name: string;
  readonly role: Role;
  /** Sent back in the X-LogoMesh-CSRF header of every action (see checkAction). */
  readonly csrf: string;
  expires: number;
}

export interface ConsoleTokens {
  /** Logs in as an operator: actions allowed unless `actions` is false. */
  readonly operator: string;
  /** Logs in read-only. */
  readonly viewer: string;
}

export const COOKIE = 'lm_console';
export const CSRF_HEADER = 'x-logomesh-csrf';
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compared as digests, so the time taken says nothing of the token, not even its length. */
function same(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The console's logins: a token becomes a random session id in an HttpOnly, SameSite=Strict
 * cookie, so no token ever appears in a URL, a page or script-readable storage. Bounded: at
 * most `max` sessions, the oldest dropped first; each lives `ttlMs` from its last use.
 */
export class Sessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly tokens: ConsoleTokens,
    private readonly actions: boolean,
    private readonly ttlMs = 8 * 3600_000,
    private readonly max = 256,
  ) {}

  /** Throws LM_CONSOLE_AUTH for a wrong token or a bad name. */
  login(token: unknown, name: unknown, now = Date.now()): Session {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new LogoMeshError('LM_CONSOLE_AUTH', 'login needs your name: 1 to 64 letters, digits, spaces or ._@- (it is what the audit trail records)', { field: 'name', expected: NAME.source, found: typeof name === 'string' ? name.slice(0, 80) : typeof name });
    }
    const t = typeof token === 'string' ? token : '';
    const role: Role | undefined = same(t, this.tokens.operator) ? (this.actions ? 'operator' : 'viewer') : same(t, this.tokens.viewer) ? 'viewer' : undefined;
    if (!role) throw new LogoMeshError('LM_CONSOLE_AUTH', 'login refused: the token is not the console token', { field: 'token', expected: "the operator's or the viewer's console token", found: 'another value' });
    const s: Session = { id: randomBytes(32).toString('base64url'), name, role, csrf: randomBytes(24).toString('base64url'), expires: now + this.ttlMs };
    this.sessions.set(s.id, s);
    while (this.sessions.size > this.max) this.sessions.delete(this.sessions.keys().next().value!);
    return s;
  }

  /** The session a request's Cookie header names, or throws LM_CONSOLE_AUTH. */
  fromCookie(header: string | undefined, now = Date.now()): Session {
    const id = cookieValue(header, COOKIE);
    const s = id === undefined ? undefined : this.sessions.get(id);
    if (!s || s.expires < now) {
      if (s) this.sessions.delete(s.id);
      throw new LogoMeshError('LM_CONSOLE_AUTH', id === undefined ? 'not logged in: no console session cookie' : 'the console session is unknown or expired: log in again', { expected: `a ${COOKIE} cookie from a login` });
    }
    s.expires = now + this.ttlMs;
    return s;
  }

  logout(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }
}

/** The Set-Cookie value for a session; Max-Age 0 with an empty id clears it. */
export function sessionCookie(id: string, maxAgeS: number): string {
  return `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeS}`;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Cross-site checks of a request that changes something (login included): an Origin, when
 * the browser sends one, that is the console's own, a JSON body (a cross-site form cannot
 * send one without a CORS preflight, which the console never answers), and for actions the
 * session's CSRF token in a header, which only the console's own page can read. With the
 * SameSite=Strict cookie this is defence in depth. Throws LM_CONSOLE_FORBIDDEN.
 */
export function checkSameOrigin(headers: Record<string, string | string[] | undefined>): void {
  const origin = headers.origin;
  const host = headers.host;
  if (typeof origin === 'string' && origin !== 'null' && origin !== `http://${host}` && origin !== `https://${host}`) {
    throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', `refused: the request comes from ${origin}, not from the console at ${host}`, { field: 'Origin', expected: `http://${host}`, found: origin });
  }
  if (origin === 'null') throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', 'refused: the request comes from an opaque origin', { field: 'Origin', expected: `http://${host}`, found: 'null' });
  const type = String(headers['content-type'] ?? '');
  if (!/^application\/json\b/.test(type)) throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', 'refused: an action must send a JSON body', { field: 'Content-Type', expected: 'application/json', found: type || '(none)' });
}

/** May this session act, with this request's CSRF header? Throws LM_CONSOLE_FORBIDDEN. */
export function checkAction(s: Session, headers: Record<string, string | string[] | undefined>): void {
  checkSameOrigin(headers);
  const sent = headers[CSRF_HEADER];
  if (typeof sent !== 'string' || !same(sent, s.csrf)) throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', `refused: the ${CSRF_HEADER} header is missing or wrong`, { field: CSRF_HEADER, expected: "the session's CSRF token", found: typeof sent === 'string' ? 'another value' : '(none)' });
  if (s.role !== 'operator') throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', `refused: ${s.name} is logged in read-only (the viewer token, or LOGOMESH_CONSOLE_ACTIONS=0)`, { expected: "a login with the operator's token", found: 'a read-only session' });
}

const LOOPBACK_NAME = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/i;

/**
 * A console on loopback answers only to loopback names in the Host header: a page of another
 * site whose name an attacker re-points at 127.0.0.1 (DNS rebinding) is refused before any
 * route. Throws LM_CONSOLE_FORBIDDEN.
 */
export function checkHost(host: string | undefined): void {
  if (host !== undefined && LOOPBACK_NAME.test(host)) return;
  throw new LogoMeshError('LM_CONSOLE_FORBIDDEN', `refused: the console on loopback answers only to a loopback host name, not ${String(host).slice(0, 100)}`, { field: 'Host', expected: '127.0.0.1, localhost or [::1], with the port', found: String(host).slice(0, 100) });
}
