import { mkdtempSync } from 'node:fs';
import { resolveHome } from './src/lifecycle/home.js';
import { PluginHost } from './src/lifecycle/plugin-host.js';
import { silentLogger } from './src/log.js';
import { loadPolicy } from './src/policy/policy.js';
import { readAudit } from './src/permissions/audit-log.js';
const home = resolveHome({ LOGOMESH_HOME: mkdtempSync('/tmp/lm-gv-home-'), LOGOMESH_INSTANCE: 'gvisor-try' });
const host = await PluginHost.create({ log: silentLogger, home, stopGraceMs: 1000, policy: loadPolicy('/tmp/runsc-policy.yaml') });
host.loadDirectory('/tmp/lm-measure');
const t0 = Date.now();
try {
  await host.startAll();
  console.log('started in', Date.now() - t0, 'ms', host.list().map((p) => [p.id, p.state, p.startMs]));
  console.log(await host.call('attacker', 'echo', { hi: 1 }, 5000));
  await new Promise((r) => setTimeout(r, 500));
  console.log(host.status('prober'));
  console.log(await host.call('prober', 'echo', { hi: 2 }, 5000));
  console.log(await host.call('prober', 'write_root', {}, 5000));
  console.log(await host.call('prober', 'become_root', {}, 5000));
  await host.call('attacker', 'attack_self', { syscall: 'mount' }, 5000).catch((e) => console.log('call:', (e as Error).message));
  await new Promise((r) => setTimeout(r, 1500));
  console.log(host.status('attacker').state, host.status('attacker').lastError);
  console.log(readAudit(home.auditFile).filter((e) => e.action === 'violation').map((e) => `${e.who} ${e.code} ${e.reason}`));
} catch (e) { console.log('ERR', (e as Error).message, host.status('prober'), host.logs ? '' : ''); }
await host.close();
