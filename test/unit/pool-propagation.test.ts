import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPropagation, holdingMount } from '../../src/memory/propagation.js';
import { appArmorProfile } from '../../src/memory/tmpfs.js';
import { ownMountNamespace } from '../../src/sandbox/mount-staging.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A mountinfo line; `optional` is what precedes " - " after the mount options (shared:N, master:N). */
function line(id: number, target: string, optional: string, type = 'ext4'): string {
  return `${id} 1 254:0 / ${target.replace(/ /g, '\\040')} rw,relatime${optional ? ` ${optional}` : ''} - ${type} /dev/vda rw`;
}

/** Where the pool may be mounted from a container: only under a mount that propagates to the host. */
describe('shared-memory pool: mount propagation', () => {
  it('finds the deepest mount holding a path and whether it is shared; the later of two at one point wins', () => {
    const info = [line(1, '/', ''), line(2, '/srv/home', 'shared:2'), line(3, '/srv/homework', ''), line(4, '/srv/home/pool', 'shared:4', 'tmpfs'), line(5, '/a b', 'master:1')].join('\n');
    expect(holdingMount(info, '/srv/home')).toEqual({ target: '/srv/home', shared: true });
    expect(holdingMount(info, '/srv/home/sockets/x')).toEqual({ target: '/srv/home', shared: true });
    expect(holdingMount(info, '/srv/homework/x')).toEqual({ target: '/srv/homework', shared: false });
    expect(holdingMount(info, '/srv/home/pool/shm-a')).toEqual({ target: '/srv/home/pool', shared: true });
    expect(holdingMount(info, '/var/tmp')).toEqual({ target: '/', shared: false });
    expect(holdingMount(info, '/a b/c')).toEqual({ target: '/a b', shared: false });
    expect(holdingMount(`${info}\n${line(6, '/srv/home', '')}`, '/srv/home/x')).toEqual({ target: '/srv/home', shared: false });
    expect(holdingMount('', '/x')).toBeUndefined();
  });

  it('in a container, refuses a pool whose folder is not on a shared mount (LM_MEMORY_POOL, naming it); on the host, checks nothing', () => {
    const home = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'lm-prop-')));
    dirs.push(home);
    const pool = path.join(home, 'pool');
    const privateHome = [line(1, '/', ''), line(2, home, '')].join('\n');
    expect(() => checkPropagation(pool, { container: true, mountinfo: privateHome })).toThrow(
      expect.objectContaining({ code: 'LM_MEMORY_POOL', message: expect.stringContaining(`the pool's folder ${pool} is on the mount ${home}, which is not shared`), details: expect.objectContaining({ found: `${home}, not shared` }) }),
    );
    expect(() => checkPropagation(pool, { container: true, mountinfo: line(1, '/', '') })).toThrow(expect.objectContaining({ code: 'LM_MEMORY_POOL' }));
    expect(() => checkPropagation(pool, { container: true, mountinfo: [line(1, '/', ''), line(2, home, 'shared:7')].join('\n') })).not.toThrow();
    expect(() => checkPropagation(pool, { container: false, mountinfo: privateHome })).not.toThrow();
  });

  it('a mount namespace of its own: the controller image says so, or init\'s differs from ours where it can be read', () => {
    const ns = (init: string | Error, self = 'mnt:[1]') => (p: string) => {
      if (p === '/proc/1/ns/mnt' && init instanceof Error) throw init;
      return p === '/proc/1/ns/mnt' ? (init as string) : self;
    };
    expect(ownMountNamespace({ LOGOMESH_CONTAINER: '1' }, ns('mnt:[1]'))).toBe(true);
    expect(ownMountNamespace({}, ns('mnt:[1]'))).toBe(false);
    expect(ownMountNamespace({}, ns('mnt:[2]'))).toBe(true);
    expect(ownMountNamespace({}, ns(Object.assign(new Error('EACCES'), { code: 'EACCES' })))).toBe(false);
  });

  it("names the AppArmor profile confining the controller (Docker's default denies mount), none when unconfined or absent", () => {
    const files = (map: Record<string, string>) => (f: string) => {
      if (!(f in map)) throw Object.assign(new Error(`ENOENT ${f}`), { code: 'ENOENT' });
      return map[f]!;
    };
    expect(appArmorProfile(files({ '/proc/self/attr/apparmor/current': 'docker-default (enforce)\n' }))).toBe('docker-default (enforce)');
    expect(appArmorProfile(files({ '/proc/self/attr/apparmor/current': 'unconfined\n' }))).toBeUndefined();
    expect(appArmorProfile(files({}))).toBeUndefined();
  });
});
