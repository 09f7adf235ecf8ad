import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/index.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { auditEntry, type EgressDecision } from '../../src/sandbox/egress.js';
import { dedent, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

const MANIFEST = dedent(`
  id: fetcher
  version: 1.0.0
  runtime: python
  entrypoint: main.py
  capabilities:
    - id: web
      scope: network
      hosts: ["api.example.com:443"]
  resources:
    maxNetworkConnections: 2
`);

describe('a networked plugin container names the egress proxy as its only DNS server', () => {
  const loaded = loadManifest(folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': MANIFEST }));
  const spec = (network: Parameters<typeof containerSpec>[0]['network']) => containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i', ...(network ? { network } : {}) }).HostConfig;
  it('keeps the engine\'s network sandbox for a networked plugin (its interface on the egress network)', () => {
    expect(containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i', network: { network: 'net-id', env: {} } }).NetworkDisabled).toBe(false);
  });

  it('takes the DNS servers of the attachment, and nothing else', () => {
    const hc = spec({ network: 'net-id', env: {}, dns: ['172.30.0.2'] });
    expect(hc?.Dns).toEqual(['172.30.0.2']);
    expect(hc?.DnsSearch).toEqual([]);
  });

  it('falls back to a dead address without one: lookups fail, nothing is forwarded', () => {
    expect(spec({ network: 'net-id', env: {} })?.Dns).toEqual(['127.0.0.1']);
  });

  it('sets no DNS without network capabilities (network mode none)', () => {
    expect(spec(undefined)?.Dns).toBeUndefined();
  });
});

describe('egress decisions as audit entries', () => {
  const base: EgressDecision = { plugin: 'fetcher', host: 'api.example.com', port: 443, method: 'CONNECT', result: 'allowed', reason: 'allow-list' };

  it('records connections on host:port, refusals with LM_EGRESS_DENIED', () => {
    expect(auditEntry(base)).toEqual({ who: 'fetcher', action: 'network', resource: 'api.example.com:443', result: 'allowed', reason: 'allow-list' });
    expect(auditEntry({ ...base, result: 'denied', reason: 'not-in-allow-list' })).toMatchObject({ code: 'LM_EGRESS_DENIED' });
  });

  it('records a cut by revocation as a refusal, a cut because the plugin stopped as none', () => {
    expect(auditEntry({ ...base, result: 'cut', reason: 'revoked' })).toEqual({ who: 'fetcher', action: 'network', resource: 'api.example.com:443', result: 'cut', reason: 'revoked', code: 'LM_EGRESS_DENIED' });
    expect(auditEntry({ ...base, result: 'cut', reason: 'detached' })).not.toHaveProperty('code');
  });

  it('records a DNS query on the queried name, with its type', () => {
    const d: EgressDecision = { plugin: 'fetcher', host: 'secret-data.exfil.example', port: null, method: 'DNS', qtype: 'TXT', result: 'denied', reason: 'no-dns' };
    expect(auditEntry(d)).toEqual({ who: 'fetcher', action: 'dns', resource: 'secret-data.exfil.example', result: 'denied', reason: 'no-dns (TXT)', code: 'LM_EGRESS_DENIED' });
  });
});
