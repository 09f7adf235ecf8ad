import { describe, expect, it } from 'vitest';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { instance } from '../integration/support.js';
import { attack } from './support.js';

interface Status {
  Name: string;
  Uid: string[];
  Gid: string[];
  CapEff: string;
  CapPrm: string;
  NoNewPrivs: string;
}
interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const NO_CAPS = '0000000000000000';

describe('privileges cannot be gained', () => {
  it("setuid-root binaries in the image (su, mount, ...) run as the plugin's own user with no capabilities: no-new-privileges", async () => {
    const { report } = await attack<{ setid: string[]; su: Run & { status: Status | null }; mount: Run; chage: Run; self: Status }>('setuid');
    // The attack means something: the runtime image has setuid-root binaries.
    expect(report.setid).toEqual(expect.arrayContaining(['/usr/bin/su', '/usr/bin/mount', '/usr/bin/passwd']));

    const uid = String(pluginUid(instance(), 'attack-setuid'));
    const gid = String(pluginGid(instance(), 'attack-setuid'));
    // su, caught while it waits for the root password: real, effective, saved and fs uid.
    expect(report.su.status).toMatchObject({ Name: 'su', Uid: [uid, uid, uid, uid], Gid: [gid, gid, gid, gid], CapEff: NO_CAPS, CapPrm: NO_CAPS, NoNewPrivs: '1' });
    expect(report.su.exitCode).not.toBe(0);
    expect(report.su.stdout).not.toMatch(/^0$/m);
    // The setuid mount runs as the plugin user, gets as far as mount(2), and the seccomp
    // profile kills it there (SIGSYS: Python reports -31).
    expect(report.mount.exitCode).toBe(-31);
    // The setgid-shadow chage cannot read /etc/shadow: the setgid bit is ignored too.
    expect(report.chage.exitCode).not.toBe(0);
    expect(report.chage.stderr).toContain('/etc/shadow');
    expect(report.self).toMatchObject({ Uid: [uid, uid, uid, uid], Gid: [gid, gid, gid, gid], CapEff: NO_CAPS, NoNewPrivs: '1' });
  });

  it('kernel settings and host-wide switches under /proc/sys and /sys are read-only, and so are the cgroup limits', async () => {
    const { report } = await attack<Record<string, unknown> & { releaseAgents: Record<string, string> }>('proc-sys');
    expect(report).toMatchObject({
      corePattern: 'EROFS',
      hostname: 'EROFS',
      dropCaches: 'EROFS',
      ueventHelper: 'EROFS',
      memoryLimit: 'EROFS',
      pidsMax: 'EROFS',
      notifyOnRelease: 'EROFS',
    });
    // Masked read-only by the engine, or absent from a kernel built without magic SysRq.
    expect(['EROFS', 'ENOENT']).toContain(report.sysrqTrigger);
    // release_agent exists only at a hierarchy's root, which the container does not see.
    for (const [file, result] of Object.entries(report.releaseAgents)) expect(result, file).not.toBe('ok');
  });
});
