import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openEndpoints, type Endpoints } from '../../src/control/endpoints.js';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, tempDir } from './support.js';

/**
 * The operator's console in a real browser (Debian's chromium driven by playwright-core)
 * against a real controller running the four examples and a memory bomb. One browser and
 * one controller for the file. Screenshots of each view go to SHOTS (printed), or to
 * LOGOMESH_CONSOLE_SHOTS when set.
 */
const CHROMIUM = '/usr/bin/chromium';
/** What the checks read of the page's document (they run in the browser; the project has no DOM types). */
interface PageDocument {
  cookie: string;
  body: { dataset: Record<string, string | undefined> };
  querySelectorAll(selector: string): { length: number };
}
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const XSS_LOG = '<img src=x onerror="document.body.dataset.xss=1"> bomb starting';
const XSS_CALL = '<script>document.body.dataset.xss=2</script>';

function bombFolder(root: string): string {
  const dir = path.join(root, 'bomb');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    'id: bomb\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\nresources: { maxMemoryMB: 48 }\nrestart: { maxRetries: 0 }\ncoordination:\n  exposesMethods: [explode]\n',
  );
  writeFileSync(
    path.join(dir, 'main.py'),
    [
      'from logomesh import Plugin',
      'plugin = Plugin()',
      `print(${JSON.stringify(XSS_LOG)}, flush=True)`,
      '@plugin.method',
      'async def explode():',
      `    print(${JSON.stringify(XSS_CALL)} + " allocating", flush=True)`,
      '    blocks = []',
      '    while True:',
      '        blocks.append(bytearray(1024 * 1024))',
      'if __name__ == "__main__":',
      '    plugin.run()',
      '',
    ].join('\n'),
  );
  return dir;
}

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`console.test.ts: skipped: ${CHROMIUM} is missing (provision.sh chromium installs it)`);

describe.skipIf(!hasChromium)('the console in a real browser, against a real controller', () => {
  let host: Controller;
  let endpoints: Endpoints;
  let ctx: BrowserContext;
  let page: Page;
  let url: string;
  let token: string;
  let viewerToken: string;
  const root = tempDir('lm-console-');
  const SHOTS = process.env.LOGOMESH_CONSOLE_SHOTS ?? path.join(root, 'screenshots');
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    console.info(`console.test.ts: screenshots in ${SHOTS}`);
    const home = resolveHome({ LOGOMESH_HOME: path.join(root, 'home'), LOGOMESH_INSTANCE: `${instance()}-console` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), startTimeoutMs: 120_000 });
    host.loadDirectory(path.join(REPO, 'manifests'));
    host.loadDirectory(path.dirname(bombFolder(path.join(root, 'plugins'))));
    endpoints = await openEndpoints(host, silentLogger, () => undefined, { LOGOMESH_CONSOLE: '127.0.0.1:0' });
    url = endpoints.consoleUrl!;
    token = readFileSync(path.join(home.dir, 'console.token'), 'utf8').trim();
    viewerToken = readFileSync(path.join(home.dir, 'console-viewer.token'), 'utf8').trim();
    const started = host.startAll();
    ctx = await chromium.launchPersistentContext(path.join(root, 'chromium-profile'), { executablePath: CHROMIUM, args: FLAGS, headless: true, viewport: { width: 1400, height: 900 } });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    await started;
  }, 600_000);

  // A failed step leaves a picture of the page beside the others.
  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail' && page) await shot(`failed-${task.name.replace(/\W+/g, '-').slice(0, 40)}`).catch(() => undefined);
  });

  afterAll(async () => {
    await ctx?.close();
    await endpoints?.close();
    await host?.close();
  }, 120_000);

  it('is off unless asked for, and refuses a request without the token', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const p of ['api/grid', 'api/audit', 'api/plugins/bomb/logs']) {
      const res = await fetch(`${url}${p}`);
      expect(res.status, p).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('LM_CONSOLE_AUTH');
    }
    const wrong = await fetch(`${url}api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'eve', token: 'guess-guess-guess' }) });
    expect(wrong.status).toBe(401);
  });

  it('logs in (a wrong token is refused on the page) and shows the four examples ready, live', async () => {
    await page.goto(url);
    await page.fill('input[name=name]', 'alice');
    await page.fill('input[name=token]', 'not-the-token');
    await shot('login');
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('[data-testid=login-error]')).toContain('LM_CONSOLE_AUTH');
    await page.fill('input[name=name]', 'alice');
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=grid]');
    // The token is nowhere a script or a URL can see it.
    expect(page.url()).not.toContain(token);
    expect(await page.evaluate(() => (globalThis as unknown as { document: PageDocument }).document.cookie)).toBe('');
    const cookies = await ctx.cookies();
    expect(cookies.find((c) => c.name === 'lm_console')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    for (const id of ['analyzer', 'hasher', 'thoughts', 'tokenizer']) {
      await page.waitForSelector(`[data-testid=plugin-row][data-plugin=${id}][data-state=ready]`, { timeout: 60_000 });
    }
    const t1 = await page.textContent('[data-testid=grid-time]');
    await expect.poll(() => page.textContent('[data-testid=grid-time]'), { timeout: 10_000 }).not.toBe(t1);
    for (let i = 0; i < 20; i++) await host.call('analyzer', 'analyze_results', {});
    await page.click('[data-testid=plugin-row][data-plugin=analyzer]');
    await expect.poll(() => page.locator('[data-testid=charts] canvas').count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await page.waitForTimeout(2500); // two more ticks of history in the charts
    await shot('plugins');
  }, 180_000);

  it("shows a memory bomb's OOM in the timeline with its cause, tied to its audit entry", async () => {
    await expect(host.call('bomb', 'explode', {}, 60_000)).rejects.toMatchObject({ code: expect.stringMatching(/^LM_/) });
    await page.click('[data-testid=nav-timeline]');
    await page.fill('[data-testid=timeline-plugin]', 'bomb');
    await page.press('[data-testid=timeline-plugin]', 'Enter');
    const oom = page.locator('[data-testid=timeline-event][data-plugin=bomb]', { hasText: 'LM_RESOURCE_MEMORY' });
    await oom.first().waitFor({ timeout: 60_000 });
    expect(await oom.first().textContent()).toMatch(/ran out of memory.*OOM.*memory limit of 48 MB/);
    await shot('timeline');
    await oom.first().locator('[data-testid=timeline-ref]').click();
    const row = page.locator('[data-testid=audit-row].sel');
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain('LM_RESOURCE_MEMORY');
  }, 120_000);

  it('revokes a method from the page (confirmed); the next call is refused, and the audit trail names the operator', async () => {
    await page.click('[data-testid=nav-plugins]');
    await page.click('[data-testid=plugin-row][data-plugin=analyzer]');
    await page.selectOption('[data-testid=perm-kind]', 'method');
    await page.fill('[data-testid=perm-target]', 'tokenizer.tokenize');
    await page.click('[data-testid=act-revoke]');
    await page.waitForSelector('[data-testid=confirm]');
    await shot('confirm');
    await page.click('[data-testid=confirm-yes]');
    await expect.poll(() => page.textContent('[data-testid=notice]').catch(() => '')).toContain('done');
    await expect(host.call('analyzer', 'analyze_results', {}, 20_000)).rejects.toMatchObject({ message: expect.stringMatching(/LM_PERMISSION_DENIED|revoked|not allowed/i) });
    await page.click('[data-testid=nav-audit]');
    await page.click('[data-testid=audit-clear]');
    await page.fill('[data-testid=audit-plugin]', 'analyzer');
    await page.fill('[data-testid=audit-action]', 'revoke');
    await page.press('[data-testid=audit-action]', 'Enter');
    const entry = page.locator('[data-testid=audit-row]', { hasText: 'operator (alice)' }).filter({ hasText: 'tokenizer.tokenize' });
    await entry.first().waitFor({ timeout: 15_000 });
    // Both filters hold: only analyzer's revocations are listed.
    expect(await page.inputValue('[data-testid=audit-plugin]')).toBe('analyzer');
    await expect.poll(async () => (await page.locator('[data-testid=audit-row]').allTextContents()).every((r) => /revoke.*analyzer/.test(r))).toBe(true);
    await expect.poll(() => page.textContent('[data-testid=chain]')).toContain('Chain verified');
    await shot('audit');
  }, 120_000);

  it('changes a live limit from the page, confirmed and audited under the operator name', async () => {
    await page.click('[data-testid=nav-plugins]');
    await page.click('[data-testid=plugin-row][data-plugin=thoughts]');
    await page.fill('[data-testid=limit-memoryMB]', '128');
    await page.click('[data-testid=act-limits]');
    await page.click('[data-testid=confirm-yes]');
    const mem = page.locator('[data-testid=plugin-row][data-plugin=thoughts] td').nth(5);
    await expect.poll(() => mem.textContent(), { timeout: 15_000 }).toContain('/ 128.0 MiB');
    await page.click('[data-testid=nav-timeline]');
    await page.fill('[data-testid=timeline-plugin]', 'thoughts');
    await page.press('[data-testid=timeline-plugin]', 'Enter');
    await page.locator('[data-testid=timeline-event][data-kind=limit]', { hasText: 'operator (alice)' }).first().waitFor({ timeout: 15_000 });
  }, 60_000);

  it('draws who may call whom, with the revoked edge marked and live call rates', async () => {
    await host.grantMethod('analyzer', 'tokenizer.tokenize');
    for (let i = 0; i < 10; i++) await host.call('analyzer', 'analyze_results', {});
    await host.revokeMethod('analyzer', 'hasher.digest');
    await page.click('[data-testid=nav-graph]');
    const revoked = page.locator('[data-testid=edge][data-edge="analyzer>hasher.digest"]');
    await expect.poll(() => revoked.textContent(), { timeout: 10_000 }).toContain('revoked');
    const busy = page.locator('[data-testid=edge][data-edge="analyzer>tokenizer.tokenize"]');
    await expect.poll(async () => Number((await busy.locator('td').nth(8).textContent()) ?? 0), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await busy.locator('td').nth(6).textContent()).toMatch(/ms$/);
    await shot('graph');
    await host.grantMethod('analyzer', 'hasher.digest');
  }, 60_000);

  it("follows a plugin's logs, and shows hostile text (a log line, an error, a plugin id) as text", async () => {
    await page.click('[data-testid=nav-logs]');
    await page.selectOption('[data-testid=logs-plugin]', 'bomb');
    await expect.poll(() => page.textContent('[data-testid=logs]'), { timeout: 15_000 }).toContain(XSS_LOG);
    expect(await page.textContent('[data-testid=logs]')).toContain(XSS_CALL);
    await shot('logs');
    // The bomb gave up (restart.maxRetries 0): its last error quotes its output, hostile lines included.
    await page.click('[data-testid=nav-plugins]');
    const err = page.locator('[data-testid=plugin-row][data-plugin=bomb] [data-testid=last-error]');
    await expect.poll(() => err.textContent(), { timeout: 30_000 }).toContain(XSS_LOG);
    // A plugin id that is markup, typed into the page and sent to the API.
    await page.click('[data-testid=nav-timeline]');
    await page.fill('[data-testid=timeline-plugin]', '<img src=x onerror="document.body.dataset.xss=3">');
    await page.press('[data-testid=timeline-plugin]', 'Enter');
    const api = await page.evaluate(async () => {
      const r = await fetch('/api/plugins/%3Cimg%20src%3Dx%3E/history');
      return { status: r.status, type: r.headers.get('content-type') };
    });
    expect(api).toEqual({ status: 404, type: 'application/json; charset=utf-8' });
    await page.waitForTimeout(1500);
    expect(
      await page.evaluate(() => {
        const d = (globalThis as unknown as { document: PageDocument }).document;
        return { xss: d.body.dataset.xss ?? null, imgs: d.querySelectorAll('img').length, scripts: d.querySelectorAll('script:not([src]):not([type=importmap])').length };
      }),
    ).toEqual({ xss: null, imgs: 0, scripts: 0 });
  }, 90_000);

  it('restarts a plugin from the page: it comes back ready, and the timeline names who asked', async () => {
    await page.click('[data-testid=nav-plugins]');
    await page.click('[data-testid=plugin-row][data-plugin=hasher]');
    const before = host.status('hasher').containerId;
    await page.click('[data-testid=act-restart]');
    await page.click('[data-testid=confirm-yes]');
    await expect.poll(() => host.status('hasher').containerId, { timeout: 60_000 }).not.toBe(before);
    await expect.poll(() => host.status('hasher').state, { timeout: 60_000 }).toBe('ready');
    await page.waitForSelector('[data-testid=plugin-row][data-plugin=hasher][data-state=ready]', { timeout: 60_000 });
    expect(await host.call('hasher', 'digest', { text: 'x' })).toBeTruthy();
    await page.click('[data-testid=nav-timeline]');
    await page.fill('[data-testid=timeline-plugin]', 'hasher');
    await page.press('[data-testid=timeline-plugin]', 'Enter');
    await page.locator('[data-testid=timeline-event][data-kind=restart]', { hasText: 'restart requested by operator (alice)' }).first().waitFor({ timeout: 15_000 });
  }, 120_000);

  it('logs out, and a login with the viewer token looks but cannot act', async () => {
    await page.click('text=Log out');
    await page.waitForSelector('[data-testid=login]');
    expect((await ctx.cookies()).find((c) => c.name === 'lm_console')?.value ?? '').toBe('');
    await page.fill('input[name=name]', 'bob');
    await page.fill('input[name=token]', viewerToken);
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('[data-testid=who]')).toContain('bob · read-only');
    expect(await page.locator('[data-testid=notice]').count()).toBe(0); // nothing of alice's session
    await page.click('[data-testid=plugin-row][data-plugin=thoughts]');
    await page.waitForSelector('[data-testid=detail]');
    expect(await page.locator('[data-testid=actions]').count()).toBe(0);
    // Nor through the API with this session's own CSRF token.
    const refused = await page.evaluate(async () => {
      const s = (await (await fetch('/api/session')).json()) as { csrf: string };
      const r = await fetch('/api/plugins/thoughts/stop', { method: 'POST', headers: { 'content-type': 'application/json', 'x-logomesh-csrf': s.csrf }, body: '{}' });
      return { status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code };
    });
    expect(refused).toEqual({ status: 403, code: 'LM_CONSOLE_FORBIDDEN' });
    expect(host.status('thoughts').state).toBe('ready');
  }, 60_000);
});
