import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleAddress } from '../../src/console/address.js';
import { openConsole } from '../../src/console/open.js';
import { MAX_LOGIN_FAILURES, MAX_STREAMS, startConsole, type ConsoleEndpoint } from '../../src/console/server.js';
import { silentLogger } from '../../src/log.js';
import { fakeConsoleHost } from './support/console-host.js';

const TOKENS = { operator: 'operator-token-0123456789', viewer: 'viewer-token-0123456789' };

describe('the console address (LOGOMESH_CONSOLE)', () => {
  it('is off unless asked for, loopback by default, and refuses other addresses without LOGOMESH_CONSOLE_PUBLIC=1', () => {
    expect(consoleAddress({})).toBeUndefined();
    expect(consoleAddress({ LOGOMESH_CONSOLE: 'off' })).toBeUndefined();
    expect(consoleAddress({ LOGOMESH_CONSOLE: '7071' })).toEqual({ host: '127.0.0.1', port: 7071 });
    expect(() => consoleAddress({ LOGOMESH_CONSOLE: '0.0.0.0:7071' })).toThrow(expect.objectContaining({ code: 'LM_CONSOLE_ENDPOINT', message: expect.stringContaining('LOGOMESH_CONSOLE_PUBLIC=1') }));
    expect(consoleAddress({ LOGOMESH_CONSOLE: '0.0.0.0:7071', LOGOMESH_CONSOLE_PUBLIC: '1' })).toEqual({ host: '0.0.0.0', port: 7071 });
    expect(() => consoleAddress({ LOGOMESH_CONSOLE: 'example.com:80' })).toThrow(expect.objectContaining({ code: 'LM_CONSOLE_ENDPOINT', details: expect.objectContaining({ path: 'LOGOMESH_CONSOLE', found: 'example.com:80' }) }));
    expect(() => consoleAddress({ LOGOMESH_CONSOLE: '99999' })).toThrow(expect.objectContaining({ code: 'LM_CONSOLE_ENDPOINT' }));
  });
});

describe('the console server (fake controller, real HTTP)', () => {
  const fake = fakeConsoleHost(3);
  let c: ConsoleEndpoint;
  let base: string;
  let origin: string;
  beforeAll(async () => {
    c = await startConsole(fake.host, { address: { host: '127.0.0.1', port: 0 }, tokens: TOKENS, log: silentLogger, tickMs: 50 });
    base = c.url.replace(/\/$/, '');
    origin = base;
  });
  afterAll(async () => {
    await c?.close();
    await fake.close();
  });

  const login = async (token: string, name = 'alice') => {
    const res = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin }, body: JSON.stringify({ token, name }) });
    return { res, body: (await res.json()) as { csrf?: string; role?: string; error?: { code: string } }, cookie: (res.headers.get('set-cookie') ?? '').split(';')[0]! };
  };
  const act = (cookie: string, headers: Record<string, string>, body: unknown = { method: 'plugin-002.work' }, what = 'plugin-001/revoke') =>
    fetch(`${base}/api/plugins/${what}`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin, ...headers }, body: JSON.stringify(body) });

  it('serves the page with a strict Content-Security-Policy, and its libraries from the package', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const page = await res.text();
    expect(page).not.toMatch(/https?:\/\//); // no CDN
    for (const f of ['/vendor/preact.mjs', '/vendor/hooks.mjs', '/vendor/htm.mjs', '/vendor/uPlot.esm.js', '/app.js', '/views.js']) expect((await fetch(`${base}${f}`)).status, f).toBe(200);
  });

  it('refuses every API request without a session, and a login with a wrong token (audited)', async () => {
    for (const p of ['/api/grid', '/api/live', '/api/audit', '/api/graph', '/api/timeline', '/api/plugins/plugin-000/logs', '/api/plugins/plugin-000/history']) {
      const res = await fetch(`${base}${p}`);
      expect(res.status, p).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('LM_CONSOLE_AUTH');
    }
    expect((await fetch(`${base}/api/grid`, { headers: { cookie: 'lm_console=forged' } })).status).toBe(401);
    const bad = await login('not-the-token');
    expect(bad.res.status).toBe(401);
    expect(bad.body.error?.code).toBe('LM_CONSOLE_AUTH');
    expect(bad.cookie).toBe('');
    expect((await login(TOKENS.operator, '<script>')).res.status).toBe(401);
  });

  it('a login puts a session (never the token) in an HttpOnly SameSite=Strict cookie', async () => {
    const { res, body, cookie } = await login(TOKENS.operator);
    expect(res.status).toBe(200);
    const set = res.headers.get('set-cookie')!;
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
    expect(set).not.toContain(TOKENS.operator);
    expect(JSON.stringify(body)).not.toContain(TOKENS.operator);
    expect(body.role).toBe('operator');
    const grid = await fetch(`${base}/api/grid`, { headers: { cookie } });
    expect(grid.status).toBe(200);
    expect(((await grid.json()) as { rows: unknown[] }).rows).toHaveLength(3);
  });

  it('actions need the CSRF header, the console origin, a JSON body and the operator role', async () => {
    const op = await login(TOKENS.operator);
    const csrf = op.body.csrf!;
    expect((await act(op.cookie, {})).status).toBe(403);
    expect((await act(op.cookie, { 'x-logomesh-csrf': 'wrong' })).status).toBe(403);
    expect((await act(op.cookie, { 'x-logomesh-csrf': csrf, origin: 'http://evil.example' })).status).toBe(403);
    expect((await act(op.cookie, { 'x-logomesh-csrf': csrf, 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(403);
    const viewer = await login(TOKENS.viewer, 'bob');
    expect(viewer.body.role).toBe('viewer');
    const refused = await act(viewer.cookie, { 'x-logomesh-csrf': viewer.body.csrf! });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'LM_CONSOLE_FORBIDDEN', message: expect.stringContaining('read-only') });
    expect(fake.done).toEqual([]);
    const ok = await act(op.cookie, { 'x-logomesh-csrf': csrf });
    expect(ok.status).toBe(200);
    expect(fake.done).toEqual([['revokeMethod', 'plugin-001', 'plugin-002.work', 'operator (alice)']]);
    expect((await act(op.cookie, { 'x-logomesh-csrf': csrf }, {}, 'plugin-001/restart')).status).toBe(200);
    expect(fake.done[1]).toEqual(['restart', 'plugin-001']);
    const limits = await act(op.cookie, { 'x-logomesh-csrf': csrf }, { memoryMB: '128' }, 'plugin-001/limits');
    expect(limits.status).toBe(200);
    expect(fake.done[2]).toEqual(['setLimits', 'plugin-001', { memoryMB: 128 }, 'operator (alice)']);
    const missing = await act(op.cookie, { 'x-logomesh-csrf': csrf }, {}, 'no-such/stop');
    expect(missing.status).toBe(404);
  });

  it('answers only to loopback host names (no DNS rebinding)', async () => {
    const { cookie } = await login(TOKENS.operator);
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${base}/api/grid`);
      request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host: `evil.example:${u.port}`, cookie } }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject).end();
    });
    expect(status).toBe(403);
    expect((await fetch(`${base.replace('127.0.0.1', 'localhost')}/api/grid`, { headers: { cookie } })).status).toBe(200);
  });

  it('bounds the live streams it serves at once', async () => {
    const { cookie } = await login(TOKENS.operator);
    const ac = new AbortController();
    const open = await Promise.all(Array.from({ length: MAX_STREAMS }, () => fetch(`${base}/api/live`, { headers: { cookie }, signal: ac.signal })));
    expect(open.every((r) => r.status === 200)).toBe(true);
    const refused = await fetch(`${base}/api/plugins/plugin-000/logs`, { headers: { cookie } });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('LM_RATE_LIMITED');
    ac.abort();
    await expect.poll(async () => (await fetch(`${base}/api/plugins/plugin-000/logs?lines=1`, { headers: { cookie }, signal: AbortSignal.timeout(2000) }).then((r) => (r.body?.cancel(), r.status)))).toBe(200);
  });

  it('answers a malformed path with a coded 400', async () => {
    const { cookie } = await login(TOKENS.operator);
    const res = await fetch(`${base}/api/plugins/%E0%A4%A/history`, { headers: { cookie } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('LM_USAGE');
  });

  it('a logout ends the session', async () => {
    const { cookie } = await login(TOKENS.operator);
    expect((await fetch(`${base}/api/logout`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin }, body: '{}' })).status).toBe(200);
    expect((await fetch(`${base}/api/grid`, { headers: { cookie } })).status).toBe(401);
  });

  it('the audit search finds the console actions under the operator name, with the chain verified', async () => {
    const { cookie } = await login(TOKENS.operator);
    let body: { rows: { who: string; action: string; resource: string }[]; chain: { ok: boolean; lines: number } } | undefined;
    for (let i = 0; i < 50; i++) {
      body = (await (await fetch(`${base}/api/audit?plugin=plugin-001`, { headers: { cookie } })).json()) as typeof body;
      if (body!.rows.some((r) => r.action === 'restart')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(body!.rows).toEqual(expect.arrayContaining([expect.objectContaining({ who: 'operator (alice)', action: 'revoke', resource: 'plugin-001:plugin-002.work' }), expect.objectContaining({ who: 'operator (alice)', action: 'restart', resource: 'plugin-001' })]));
    expect(body!.chain.ok).toBe(true);
    expect(body!.chain.lines).toBeGreaterThan(3);
  });

  it('the graph marks the revoked edge', async () => {
    const { cookie } = await login(TOKENS.operator);
    const g = (await (await fetch(`${base}/api/graph`, { headers: { cookie } })).json()) as { edges: { from: string; to: string; method: string; revoked: boolean }[] };
    expect(g.edges).toHaveLength(3);
    expect(g.edges.find((e) => e.from === 'plugin-001')).toMatchObject({ to: 'plugin-002', method: 'work', revoked: true });
    expect(g.edges.find((e) => e.from === 'plugin-000')).toMatchObject({ revoked: false });
  });
});

describe('failed logins', () => {
  it(`are limited to ${MAX_LOGIN_FAILURES} a minute, then refused with LM_RATE_LIMITED even with the right token`, async () => {
    const fake = fakeConsoleHost(1);
    const c = await startConsole(fake.host, { address: { host: '127.0.0.1', port: 0 }, tokens: TOKENS, log: silentLogger });
    try {
      const login = (token: string) => fetch(`${c.url}api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, name: 'mallory' }) });
      for (let i = 0; i < MAX_LOGIN_FAILURES; i++) expect((await login(`guess-${i}`)).status).toBe(401);
      const limited = await login(TOKENS.operator);
      expect(limited.status).toBe(429);
      expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('LM_RATE_LIMITED');
    } finally {
      await c.close();
      await fake.close();
    }
  });
});

describe('opening the console from the environment', () => {
  it('is off by default; on, writes its tokens 0600 into the home and removes them when closed', async () => {
    const fake = fakeConsoleHost(1);
    const home = mkdtempSync(path.join(os.tmpdir(), 'lm-console-home-'));
    try {
      expect(await openConsole(fake.host, home, silentLogger, {})).toBeUndefined();
      await expect(openConsole(fake.host, home, silentLogger, { LOGOMESH_CONSOLE: '127.0.0.1:0', LOGOMESH_CONSOLE_TOKEN: 'short' })).rejects.toMatchObject({ code: 'LM_CONSOLE_ENDPOINT', details: expect.objectContaining({ path: 'LOGOMESH_CONSOLE_TOKEN' }) });
      const c = (await openConsole(fake.host, home, silentLogger, { LOGOMESH_CONSOLE: '127.0.0.1:0', LOGOMESH_CONSOLE_TOKEN: TOKENS.operator }))!;
      const file = path.join(home, 'console.token');
      expect(readFileSync(file, 'utf8').trim()).toBe(TOKENS.operator);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(path.join(home, 'console-viewer.token'), 'utf8').trim()).toMatch(/^[\w-]{32}$/);
      await c.close();
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
      await fake.close();
    }
  });
});
