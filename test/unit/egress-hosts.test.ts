import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/index.js';
import { hostCovered } from '../../src/policy/decisions.js';
import { networkHosts, normalizeHost } from '../../src/sandbox/egress.js';
import { dedent, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

describe('host entries in one normal form', () => {
  it.each([
    ['api.example.com:443', 'api.example.com:443'],
    ['API.Example.COM:443', 'api.example.com:443'],
    ['api.example.com.:443', 'api.example.com:443'],
    ['API.EXAMPLE.COM.:0443', 'api.example.com:443'],
    [' api.example.com:443 ', 'api.example.com:443'],
    ['*.Example.com.:8080', '*.example.com:8080'],
    ['10.0.0.7:5432', '10.0.0.7:5432'],
  ])('%j is %j', (spelled, normal) => {
    expect(normalizeHost(spelled)).toBe(normal);
  });

  it.each(['api.example.com', 'api.example.com:', 'api.example.com:0', 'api.example.com:65536', 'api.example.com:443x', 'api.example.com:000443', ':443', 'https://api.example.com:443', 'api example.com:443', '[::1]:443', 'a@b:443'])(
    '%j is not a host entry',
    (text) => {
      expect(normalizeHost(text)).toBeUndefined();
    },
  );

  it('a manifest listing one host in two spellings has it once, in normal form', () => {
    const dir = folders.create({
      'main.py': MAIN_PY,
      'plugin.yaml': dedent(`
        id: fetcher
        version: 1.0.0
        runtime: python
        entrypoint: main.py
        capabilities:
          - { id: a, scope: network, hosts: ["api.example:8080", "cdn.example:443"] }
          - { id: b, scope: network, hosts: ["API.EXAMPLE:8080", "cdn.example.:443"] }
        resources: { maxNetworkConnections: 2 }
      `),
    });
    expect(networkHosts(loadManifest(dir).manifest)).toEqual(['api.example:8080', 'cdn.example:443']);
  });

  it('the policy compares hosts in the same form', () => {
    expect(hostCovered('api.example.com:443', 'API.Example.com.:0443')).toBe(true);
    expect(hostCovered('*.example.com', 'API.example.com.:8443')).toBe(true);
    expect(hostCovered('api.example.com:443', 'api.example.com:444')).toBe(false);
  });
});
