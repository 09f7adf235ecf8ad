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
interface Mount {
  target: string;
  fstype: string;
  nosuid: boolean;
}
interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const NO_CAPS = '0000000000000000';

describe('privileges cannot be gained', () => {
  it("no setuid or setgid file in the image, none honoured on a writable mount, and su, mount, chage run as the plugin's own user with no capabilities", async () => {
    const { report } = await attack<{ setid: string[]; su: Run & { status: Status | null }; mount: Run; chage: Run; self: Status; writable: Mount[] }>('setuid');
    // The first layer: the runtime image's setuid and setgid bits are cleared at build.
    expect(report.setid).toEqual([]);
    // The second: whatever the plugin can write to ignores the bit, so it cannot plant one.
    expect(report.writable.map((m) => m.target)).toContain('/tmp');
    for (const m of report.writable) expect(m, m.target).toMatchObject({ nosuid: true });

    const uid = String(pluginUid(instance(), 'attack-setuid'));
    const gid = String(pluginGid(instance(), 'attack-setuid'));
    // su, caught while it waits for the root password: real, effective, saved and fs uid.
    expect(report.su.status).toMatchObject({ Name: 'su', Uid: [uid, uid, uid, uid], Gid: [gid, gid, gid, gid], CapEff: NO_CAPS, CapPrm: NO_CAPS, NoNewPrivs: '1' });
    expect(report.su.exitCode).not.toBe(0);
    expect(report.su.stdout).not.toMatch(/^0$/m);
    // mount as the plugin's user is refused before or at mount(2) (there the seccomp profile kills it: -31).
    expect(report.mount.exitCode).not.toBe(0);
    // chage cannot read /etc/shadow.
    expect(report.chage.exitCode).not.toBe(0);
    expect(report.chage.stderr).toContain('/etc/shadow');
    // The third: no-new-privileges, so a setuid file from anywhere would still run as the plugin.
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
