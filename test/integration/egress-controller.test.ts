import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LABEL } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { Targets } from './egress-support.js';
import { docker, instance, tempDir } from './support.js';

/** A Node.js plugin serving `get(url)` through its proxy (an absolute URI); `networked` lists the target. */
function fetcher(root: string, id: string, host: string | undefined): void {
  const dir = path.join(root, id);
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'main.mjs'),
    `import http from 'node:http';
import { Plugin } from 'logomesh';
const plugin = new Plugin();
plugin.method('get', ({ url }) => new Promise((resolve) => {
  const proxy = new URL(process.env.HTTP_PROXY);
  const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { Host: new URL(url).host } }, (res) => { res.resume(); resolve(res.statusCode); });
  req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve(e.message));
  req.end();
}));
await plugin.run();
`,
  );
  const network = host ? `capabilities:\n  - { id: web, scope: network, hosts: ["${host}"] }\nresources: { maxNetworkConnections: 4 }\n` : '';
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [get]\nrestart: { policy: on-failure, maxRetries: 3, backoffMs: 100 }\n${network}`);
}

/**
 * The controller and the plugins' proxies: each networked plugin gets its own, removed with it;
 * a plugin whose proxy dies under it is restarted with a new one.
 */
describe('egress proxies under a controller', () => {
  const targets = new Targets();
  const web = `lm-${instance()}-ctl-web`;
  const inst = `${instance()}-egress-ctl`;
  let host: Controller;

  beforeAll(async () => {
    await targets.start('ctl-targets', [web]);
    const root = tempDir('lm-egress-ctl-');
    fetcher(root, 'fetcher', `${web}:8080`);
    fetcher(root, 'other', `${web}:8080`);
    fetcher(root, 'offline', undefined);
    host = await Controller.create({
      log: silentLogger,
      home: resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst }),
      docker: await docker(),
      stopGraceMs: 2_000,
      egressNetworks: [targets.network!.id],
    });
    host.loadDirectory(root);
    const t0 = Date.now();
    await host.start('offline');
    const t1 = Date.now();
    await host.start('fetcher');
    const t2 = Date.now();
    await host.start('other');
    console.log(`egress: start of a plugin without network ${t1 - t0} ms, with its network and proxy ${t2 - t1} ms (first: image check, way-out bridge, firewall check), ${Date.now() - t2} ms (second)`);
  });

  afterAll(async () => {
    await host?.close();
    await targets.remove();
  });

  const proxies = async (plugin?: string) => {
    const label = [`${LABEL.instance}=${inst}`, `${LABEL.role}=egress`, ...(plugin ? [`${LABEL.plugin}=${plugin}`] : [])];
    return (await docker()).listContainers({ all: true, filters: JSON.stringify({ label }) });
  };

  it('gives each networked plugin a proxy of its own', async () => {
    expect(await host.call('fetcher', 'get', { url: `http://${web}:8080/` }, 20_000)).toBe(200);
    expect(await host.call('other', 'get', { url: `http://${web}:8080/` }, 20_000)).toBe(200);
    expect((await proxies('fetcher')).map((c) => c.State)).toEqual(['running']);
    expect((await proxies('other')).map((c) => c.State)).toEqual(['running']);
    expect(await proxies('offline')).toEqual([]);
  });

  it('restarts a plugin whose proxy dies under it, with a new proxy; the other plugin does not notice', async () => {
    const [dead] = await proxies('fetcher');
    const before = host.status('fetcher').containerId;
    await (await docker()).getContainer(dead!.Id).kill();
    await vi.waitFor(() => expect(host.status('fetcher')).toMatchObject({ state: 'ready', restarts: 1 }), { timeout: 30_000, interval: 100 });
    expect(host.status('fetcher').containerId).not.toBe(before);
    const now = await proxies('fetcher');
    expect(now.map((c) => c.Id)).not.toContain(dead!.Id);
    expect(now.map((c) => c.State)).toEqual(['running']);
    expect(await host.call('fetcher', 'get', { url: `http://${web}:8080/` }, 20_000)).toBe(200);
    expect(host.status('other')).toMatchObject({ state: 'ready', restarts: 0 });
    expect(readAudit(host.home.auditFile)).toContainEqual(expect.objectContaining({ who: 'fetcher', action: 'violation', code: 'LM_EGRESS', reason: expect.stringContaining('egress proxy of plugin fetcher exited') }));
  });

  it('removes a plugin’s proxy and network when the plugin stops', async () => {
    await host.stop('other');
    expect(await proxies('other')).toEqual([]);
    const nets = await (await docker()).listNetworks({ filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`, `${LABEL.plugin}=other`] }) });
    expect(nets).toEqual([]);
  });
});
