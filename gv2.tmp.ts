import { mkdtempSync } from 'node:fs';
import { resolveHome } from './src/lifecycle/home.js';
import { PluginHost } from './src/lifecycle/plugin-host.js';
import { createLogger } from './src/log.js';
import { loadPolicy } from './src/policy/policy.js';
const home = resolveHome({ LOGOMESH_HOME: mkdtempSync('/tmp/lm-gv-home-'), LOGOMESH_INSTANCE: 'gvisor-try2' });
const host = await PluginHost.create({ log: createLogger('lm', 'info'), home, stopGraceMs: 1000, policy: loadPolicy('/tmp/runsc-policy.yaml') });
host.loadDirectory('/tmp/lm-measure/prober');
host.followLogs('prober', (l) => console.log('LOG', JSON.stringify(l)));
await host.startAll();
for (let i = 0; i < 6; i++) {
  const t = Date.now();
  try { console.log(i, await host.call('prober', 'echo', { i }, 3000), Date.now() - t); } catch (e) { console.log(i, 'ERR', (e as Error).message, host.status('prober').state); }
  await new Promise((r) => setTimeout(r, 700));
}
await host.close();
