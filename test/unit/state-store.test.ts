import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseState, StateStore, type ControllerState } from '../../src/controller/state-store.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GRANT = {
  name: 'data',
  requested: '/srv/data',
  hostPath: '/srv/data',
  writable: false,
  containerPath: '/grants/data',
  grantedAt: 1_700_000_000_000,
  expiresAt: 1_700_000_600_000,
  rule: '/etc/logomesh/policy.yaml /hostPaths/0',
};

describe('state.json', () => {
  it('loads a file written before permissions were kept, as it is', () => {
    const old = { version: 1, folders: ['/p/one'], plugins: { one: { restarts: 2, manifestHash: 'abc', containerId: 'c1' } } };
    expect(parseState(JSON.stringify(old))).toEqual(old);
  });

  it('round-trips every permission field through the store, mode 0600', () => {
    const file = path.join(dir, 'round', 'state.json');
    const state: ControllerState = {
      version: 1,
      folders: ['/p/one'],
      plugins: {
        one: {
          restarts: 0,
          manifestHash: 'abc',
          permissions: {
            revokedMethods: ['two.echo'],
            methodGrants: [{ method: 'two.other', expiresAt: 1_700_000_000_000 }],
            pathGrants: [GRANT],
            revokedHosts: ['api.example.com:443'],
          },
        },
      },
    };
    const store = new StateStore(file);
    store.write(state);
    expect(store.read()).toEqual(state);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toContain('"revokedHosts"');
  });

  it('is no state at all when damaged or of another version', () => {
    expect(parseState('{"version":1,')).toBeUndefined();
    expect(parseState('{"version":2,"folders":[],"plugins":{}}')).toBeUndefined();
    expect(parseState('[]')).toBeUndefined();
    expect(new StateStore(path.join(dir, 'missing', 'state.json')).read()).toBeUndefined();
  });

  it('leaves out a damaged entry, not the whole file', () => {
    const text = JSON.stringify({
      version: 1,
      folders: ['/p/one', 7],
      plugins: {
        bad: { restarts: 'x', manifestHash: 'h' },
        one: {
          restarts: 1,
          manifestHash: 'h',
          permissions: {
            revokedMethods: ['a.b', 3, ''],
            methodGrants: [{ method: 'a.c', expiresAt: 'soon' }, { method: 'a.d', expiresAt: 5, extra: true }],
            pathGrants: [{ ...GRANT, writable: 'yes' }, GRANT],
            revokedHosts: 'api.example.com:443',
          },
        },
        two: { restarts: 0, manifestHash: 'h', permissions: { revokedMethods: [1] } },
      },
    });
    expect(parseState(text)).toEqual({
      version: 1,
      folders: ['/p/one'],
      plugins: {
        one: { restarts: 1, manifestHash: 'h', permissions: { revokedMethods: ['a.b'], methodGrants: [{ method: 'a.d', expiresAt: 5 }], pathGrants: [GRANT] } },
        two: { restarts: 0, manifestHash: 'h' },
      },
    });
  });
});
