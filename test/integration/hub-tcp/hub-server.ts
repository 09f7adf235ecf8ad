// The hub alone, in a container of its own, for test/integration/hub-tcp.test.ts: plugins
// reach it over TCP on port 7070 with their keys (as across nodes), host clients on 7071
// with the token. Its audit entries and the plugins it saw say hello go to stdout, one JSON
// line each, after 'hub '. Configured by HUB_CONFIG: { token, plugins: [{ dir, key (hex) }] }.
import { policyOf } from '../../../src/hub/acl.js';
import { Hub } from '../../../src/hub/hub.js';
import { createLogger } from '../../../src/log.js';
import { loadManifest } from '../../../src/manifest/index.js';

const config = JSON.parse(process.env.HUB_CONFIG ?? '{}') as { token: string; plugins: { dir: string; key: string }[] };
// Each line starts with 'hub ': the engine's client would parse an output that is all JSON as one object.
const line = (o: unknown) => process.stdout.write(`hub ${JSON.stringify(o)}\n`);
const hub = new Hub({ log: createLogger('hub', 'warn'), token: config.token, audit: (e) => line({ audit: e }) });
for (const p of config.plugins) {
  const key = Buffer.from(p.key, 'hex');
  hub.attachRemotePlugin(policyOf(loadManifest(p.dir).manifest), { key: () => key });
}
hub.on('ready', (id: string) => line({ ready: id }));
await hub.listenPlugins(7070, '0.0.0.0');
await hub.listenHost(7071, '0.0.0.0');
line({ listening: true });
process.on('SIGTERM', () => void hub.close().then(() => process.exit(0)));
