import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isLogoMeshError, LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { ACTIONS, runAction, type ConsoleAction } from './actions.js';
import type { ConsoleAddress } from './address.js';
import { AuditReader, ChainCheck } from './audit-search.js';
import { isLoopback } from './address.js';
import type { ConsoleHost } from './host.js';
import { ConsoleState } from './state.js';
import { checkAction, checkHost, checkSameOrigin, Sessions, sessionCookie, type ConsoleTokens, type Session } from './sessions.js';
import { loadStaticFiles, type StaticFile } from './static-files.js';
import { timeline } from './timeline.js';

export interface ConsoleOptions {
  readonly address: ConsoleAddress;
  readonly tokens: ConsoleTokens;
  /** false: every login is read-only (LOGOMESH_CONSOLE_ACTIONS=0). Default true. */
  readonly actions?: boolean;
  readonly log: Logger;
  /** The grid's tick, ms (default 1000); the history keeps `historyTicks` of them (default 3600: an hour). */
  readonly tickMs?: number;
  readonly historyTicks?: number;
}

export interface ConsoleEndpoint {
  /** http://host:port/ */
  readonly url: string;
  readonly state: ConsoleState;
  /** Stop listening, end every live stream and the tick. Idempotent. */
  close(): Promise<void>;
}

/** Live streams (grid and logs) open at once, over every session. */
export const MAX_STREAMS = 64;

const STATUS: Record<string, number> = { LM_RATE_LIMITED: 429, LM_CONSOLE_AUTH: 401, LM_CONSOLE_FORBIDDEN: 403, LM_PLUGIN_NOT_FOUND: 404, LM_USAGE: 400, LM_PERMISSION_DENIED: 403, LM_POLICY_DENIED: 403, LM_LIMIT_INVALID: 400, LM_GRANT_PATH: 400, LM_MESSAGE_TOO_LARGE: 413 };

/**
 * The operator's console (docs/console.md): the page and its JSON API on their own port,
 * loopback unless LOGOMESH_CONSOLE_PUBLIC=1. Every API request needs a session from a
 * login with a console token; actions also need the operator role and pass the cross-site
 * checks of sessions.ts. The live grid and logs are Server-Sent Events.
 */
export async function startConsole(host: ConsoleHost, opts: ConsoleOptions): Promise<ConsoleEndpoint> {
  const { files, csp } = loadStaticFiles();
  const sessions = new Sessions(opts.tokens, opts.actions !== false);
  const state = new ConsoleState(host, opts.tickMs ?? 1000, opts.historyTicks ?? 3600);
  const chain = new ChainCheck(host.audit.file);
  const audit = new AuditReader(host.audit.file);
  const failures = new LoginFailures();
  const streams = new Set<ServerResponse>();
  const loopbackOnly = isLoopback(opts.address.host);
  const log = opts.log.child({ component: 'console' });
  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!isLogoMeshError(err) || !STATUS[err.code]) log.error({ err: String((err as Error)?.message ?? err), url: req.url }, 'console request failed');
      sendError(res, err);
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    if (loopbackOnly) checkHost(req.headers.host);
    const file = files.get(url.pathname);
    if (file && (req.method === 'GET' || req.method === 'HEAD')) return sendFile(res, file, csp);
    if (url.pathname === '/favicon.ico') return void res.writeHead(204, SECURITY_HEADERS).end();
    if (!url.pathname.startsWith('/api/')) return sendJson(res, 404, { error: { code: 'LM_USAGE', message: `no such page: ${url.pathname}` } });
    const parts = url.pathname.split('/').filter(Boolean).slice(1).map(decodePart);
    if (req.method === 'POST' && parts[0] === 'login' && parts.length === 1) {
      checkSameOrigin(req.headers);
      const body = (await readJson(req)) as { token?: unknown; name?: unknown };
      failures.check();
      let s: Session;
      try {
        s = sessions.login(body.token, body.name);
      } catch (err) {
        failures.add();
        host.audit.record({ who: 'console', action: 'login', resource: 'console', result: 'denied', code: 'LM_CONSOLE_AUTH', reason: (err as Error).message });
        throw err;
      }
      host.audit.record({ who: `operator (${s.name})`, action: 'login', resource: 'console', result: s.role === 'operator' ? 'allowed' : 'allowed read-only' });
      res.setHeader('Set-Cookie', sessionCookie(s.id, 8 * 3600));
      return sendJson(res, 200, { name: s.name, role: s.role, csrf: s.csrf });
    }
    const s = sessions.fromCookie(req.headers.cookie);
    if (req.method === 'POST' && parts[0] === 'logout') {
      checkSameOrigin(req.headers);
      sessions.logout(s.id);
      res.setHeader('Set-Cookie', sessionCookie('', 0));
      return sendJson(res, 200, { loggedOut: true });
    }
    if (req.method === 'GET') return get(parts, url.searchParams, s, req, res);
    if (req.method === 'POST' && parts[0] === 'plugins' && parts.length === 3 && ACTIONS.includes(parts[2] as ConsoleAction)) {
      checkAction(s, req.headers);
      const body = (await readJson(req)) as Record<string, unknown>;
      return sendJson(res, 200, await runAction(host, s, parts[1]!, parts[2] as ConsoleAction, body));
    }
    throw new LogoMeshError('LM_USAGE', `unknown console request ${req.method} ${url.pathname}`, { path: url.pathname });
  }

  function get(parts: string[], q: URLSearchParams, s: Session, req: IncomingMessage, res: ServerResponse): void {
    const [what, id, sub] = parts;
    if (what === 'session') return sendJson(res, 200, { name: s.name, role: s.role, csrf: s.csrf });
    if (what === 'grid') return sendJson(res, 200, state.gridMessage());
    if (what === 'live') {
      openStream(req, res);
      res.write(`event: grid\ndata: ${state.gridMessage()}\n\n`);
      const off = state.onTick((msg) => res.write(`event: grid\ndata: ${msg}\n\n`));
      res.on('close', off);
      return;
    }
    if (what === 'graph') return sendJson(res, 200, state.calls.graph(host));
    if (what === 'audit') {
      const num = (k: string) => (q.get(k) ? Number(q.get(k)) : undefined);
      const filter = { plugin: q.get('plugin') || undefined, action: q.get('action') || undefined, result: q.get('result') || undefined, text: q.get('text') || undefined, since: num('since'), until: num('until'), limit: num('limit') };
      return sendJson(res, 200, { rows: audit.search(strip(filter)), chain: chain.status() });
    }
    if (what === 'timeline') {
      const plugin = q.get('plugin') || undefined;
      const rows = audit.search(strip({ plugin, limit: 1000 }));
      return sendJson(res, 200, { events: timeline(rows).filter((e) => !plugin || e.plugin === plugin).slice(0, 300) });
    }
    if (what === 'plugins' && id && sub === 'history') {
      host.status(id);
      return sendJson(res, 200, state.history.series(id, positive(q.get('seconds'), 3600)) ?? { t: [], cpu: [], memoryMB: [], pids: [] });
    }
    if (what === 'plugins' && id && sub === 'logs') {
      const tail = host.logs(id, Math.min(positive(q.get('lines'), 200), 1000));
      openStream(req, res);
      for (const l of tail) res.write(`event: log\ndata: ${JSON.stringify(l)}\n\n`);
      const off = host.followLogs(id, (l) => res.write(`event: log\ndata: ${JSON.stringify(l)}\n\n`));
      res.on('close', off);
      return;
    }
    throw new LogoMeshError('LM_USAGE', `unknown console request GET /api/${parts.join('/')}`, { path: `/api/${parts.join('/')}` });
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    // Each stream holds a socket and a listener: a page opens two, so this is many pages.
    if (streams.size >= MAX_STREAMS) throw new LogoMeshError('LM_RATE_LIMITED', `the console already serves ${MAX_STREAMS} live streams; close a page`, { expected: `at most ${MAX_STREAMS} live streams` });
    req.socket.setTimeout(0);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    streams.add(res);
    res.on('close', () => streams.delete(res));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new LogoMeshError('LM_CONSOLE_ENDPOINT', `console cannot listen on ${opts.address.host}:${opts.address.port}: ${err.message}`, { found: err.message }, { cause: err })));
    server.listen(opts.address.port, opts.address.host, () => resolve());
  });
  state.start();
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : opts.address.port;
  const hostPart = opts.address.host.includes(':') ? `[${opts.address.host}]` : opts.address.host;
  const url = `http://${hostPart}:${port}/`;
  log.info({ url }, 'console listening');
  let closing: Promise<void> | undefined;
  return {
    url,
    state,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        state.stop();
        for (const r of streams) r.end();
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/** Failed logins allowed a minute, over every client: beyond it, LM_RATE_LIMITED, and no audit entry for each. */
export const MAX_LOGIN_FAILURES = 10;

/** Wrong tokens, counted over a sliding minute: a loop guessing tokens can neither win nor flood the audit trail. */
class LoginFailures {
  private readonly times: number[] = [];

  check(now = Date.now()): void {
    while (this.times.length && this.times[0]! < now - 60_000) this.times.shift();
    if (this.times.length >= MAX_LOGIN_FAILURES) {
      throw new LogoMeshError('LM_RATE_LIMITED', `too many failed console logins: wait ${Math.ceil((this.times[0]! + 60_000 - now) / 1000)} s`, { expected: `at most ${MAX_LOGIN_FAILURES} failed logins a minute` });
    }
  }

  add(now = Date.now()): void {
    this.times.push(now);
  }
}

function decodePart(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    throw new LogoMeshError('LM_USAGE', `the path part ${p.slice(0, 80)} is not valid percent-encoding`, { path: p.slice(0, 80), expected: 'percent-encoded UTF-8' });
  }
}

function positive(v: string | null, fallback: number): number {
  const n = Number(v);
  return v !== null && Number.isFinite(n) && n > 0 ? n : fallback;
}

function strip<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && !Number.isNaN(v))) as T;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new LogoMeshError('LM_MESSAGE_TOO_LARGE', 'console request larger than 64 KiB', { expected: 'at most 64 KiB' });
    chunks.push(c as Buffer);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (err) {
    throw new LogoMeshError('LM_USAGE', `console request body is not a JSON object: ${(err as Error).message}`, { expected: 'a JSON object' });
  }
}

const SECURITY_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Resource-Policy': 'same-origin' };

function sendFile(res: ServerResponse, f: StaticFile, csp: string): void {
  res.writeHead(200, { 'Content-Type': f.type, 'Content-Length': f.body.length, 'Content-Security-Policy': csp, 'Cache-Control': 'no-cache', ...SECURITY_HEADERS });
  res.end(f.body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...SECURITY_HEADERS });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.end();
  const e = isLogoMeshError(err) ? err.toJSON() : { code: 'LM_INTERNAL', message: String((err as Error)?.message ?? err), details: {} };
  sendJson(res, STATUS[e.code] ?? 500, { error: e });
}
