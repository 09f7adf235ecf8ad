import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { DenialAssembler, parseAuditRecord, parseSeccompRecord, parseSuppressed, seccompKillOf, type AuditRecord, type KernelDenial, type SeccompKill } from '../../src/violations/audit-records.js';
import { AuditDaemonLog, KernelLog } from '../../src/violations/kernel-log.js';
import { kernelDenialMessage, KernelWatch, seccompKillMessage } from '../../src/violations/kernel-watch.js';

/** Records as /dev/kmsg gives them, taken from a real kill of a plugin process. */
const MOUNT =
  '5,77,15175694954,-;audit: type=1326 audit(1795559066.767:77): auid=4294967295 uid=10001 gid=1042733371 ses=4294967295 pid=6650 comm="python3" exe="/usr/bin/python3.11" sig=31 arch=c000003e syscall=165 compat=0 ip=0x7f66db986e5a code=0x80000000\n';
const SOCKETCALL_32 =
  '5,76,14793992508,-;audit: type=1326 audit(1795558685.067:76): auid=4294967295 uid=10001 gid=10001 ses=4294967295 pid=1115 comm="python3" exe="/usr/bin/python3.11" sig=31 arch=40000003 syscall=102 compat=1 ip=0x41df9017 code=0x0\n';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-kmsg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseSeccompRecord', () => {
  it('reads a kill: process, user, group, system call by name, architecture and time', () => {
    expect(parseSeccompRecord(MOUNT)).toEqual({
      pid: 6650,
      uid: 10001,
      gid: 1042733371,
      comm: 'python3',
      exe: '/usr/bin/python3.11',
      syscall: 165,
      name: 'mount',
      arch: 'x86_64',
      signal: 31,
      at: 1795559066767,
      serial: 77,
    });
  });

  it("reads the audit daemon's form of the same record, without its interpreted fields", () => {
    const line = `type=SECCOMP msg=audit(1795559066.767:77): auid=4294967295 uid=10001 gid=1042733371 ses=4294967295 subj=unconfined pid=6650 comm="python3" exe="/usr/bin/python3.11" sig=31 arch=c000003e syscall=165 compat=0 ip=0x7f66db986e5a code=0x80000000\x1dAUID="unset" UID="plugin" GID="unknown(1042733371)" ARCH=x86_64 SYSCALL=mount`;
    expect(parseSeccompRecord(line)).toEqual(parseSeccompRecord(MOUNT));
  });

  it('names a 32-bit call by the 32-bit table', () => {
    expect(parseSeccompRecord(SOCKETCALL_32)).toMatchObject({ syscall: 102, name: 'socketcall', arch: 'i386 (32-bit)' });
  });

  it('decodes a name the kernel gave in hex (it had a space)', () => {
    const hex = Buffer.from('my plugin').toString('hex').toUpperCase();
    expect(parseSeccompRecord(MOUNT.replace('comm="python3"', `comm=${hex}`))?.comm).toBe('my plugin');
  });

  it('ignores every other record, and seccomp records without a signal', () => {
    expect(parseSeccompRecord('6,1,100,-;docker0: port 1(veth1) entered disabled state\n')).toBeUndefined();
    expect(parseSeccompRecord('5,2,100,-;audit: type=1400 audit(1795559066.767:78): apparmor="DENIED"\n')).toBeUndefined();
    expect(parseSeccompRecord(MOUNT.replace('sig=31', 'sig=0'))).toBeUndefined();
    expect(parseSeccompRecord(MOUNT.replace('arch=c000003e', 'arch=c00000b7'))).toMatchObject({ name: 'syscall 165', arch: 'c00000b7' });
  });
});

describe('DenialAssembler', () => {
  // A refused write to /proc/sys, as the kernel printed it: SYSCALL, CWD, two PATH records, PROCTITLE.
  const SYSCALL =
    '5,620,16584000000,-;audit: type=1300 audit(1795560475.800:629): arch=c000003e syscall=257 success=no exit=-30 a0=ffffff9c a1=7f2d20ee5a30 a2=80241 a3=1b6 items=2 ppid=25962 pid=26012 auid=4294967295 uid=10001 gid=1037942624 euid=10001 suid=10001 fsuid=10001 egid=1037942624 sgid=1037942624 fsgid=1037942624 tty=(none) ses=4294967295 comm="python3" exe="/usr/bin/python3.11" key="logomesh-rofs"\n';
  const RECORDS = [
    SYSCALL,
    '5,621,16584000001,-;audit: type=1307 audit(1795560475.800:629): cwd="/plugin"\n',
    '5,622,16584000002,-;audit: type=1302 audit(1795560475.800:629): item=0 name="/proc/sys/kernel/" inode=1 dev=00:2b mode=040555 ouid=0 ogid=0 rdev=00:00 nametype=PARENT\n',
    '5,623,16584000003,-;audit: type=1302 audit(1795560475.800:629): item=1 name="/proc/sys/kernel/hostname" inode=2 dev=00:2b mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL\n',
    '5,624,16584000004,-;audit: type=1327 audit(1795560475.800:629): proctitle=707974686F6E33\n',
  ];

  it('puts a SYSCALL record of a LogoMesh rule and its PATH records together, naming the file rather than its folder', () => {
    const out: KernelDenial[] = [];
    const a = new DenialAssembler((d) => out.push(d));
    for (const r of RECORDS) a.add(parseAuditRecord(r)!);
    expect(out).toEqual([]);
    a.flush();
    expect(out).toEqual([
      expect.objectContaining({ pid: 26012, uid: 10001, gid: 1037942624, name: 'openat', key: 'logomesh-rofs', errno: 'EROFS', paths: ['/proc/sys/kernel/hostname'], serial: 629 }),
    ]);
    expect(kernelDenialMessage(out[0]!)).toBe('openat(2) on "/proc/sys/kernel/hostname" failed with EROFS: a write to a read-only place (process 26012 python3)');
  });

  it('ends an event at the next one, and ignores SYSCALL records of other rules', () => {
    const out: KernelDenial[] = [];
    const a = new DenialAssembler((d) => out.push(d));
    a.add(parseAuditRecord(SYSCALL)!);
    a.add(parseAuditRecord(SYSCALL.replace(':629)', ':630)').replace('key="logomesh-rofs"', 'key="someone-else"'))!);
    a.add(parseAuditRecord(RECORDS[3]!.replace(':629)', ':630)'))!);
    a.flush();
    expect(out.map((d) => [d.serial, d.paths])).toEqual([[629, []]]);
  });
});

describe('parseSuppressed', () => {
  it('reads how many audit records the kernel dropped', () => {
    expect(parseSuppressed('4,1715,15733801740,-;kauditd_printk_skb: 28 callbacks suppressed\n')).toBe(28);
    expect(parseSuppressed(MOUNT)).toBeUndefined();
  });
});

describe('KernelLog', () => {
  it('skips what was logged before it started, then reports each new kill', async () => {
    const device = path.join(dir, 'kmsg');
    writeFileSync(device, SOCKETCALL_32);
    const kills: SeccompKill[] = [];
    const log = KernelLog.start({ device, pollMs: 10, onRecord: (r: AuditRecord) => void (seccompKillOf(r) && kills.push(seccompKillOf(r)!)) });
    if (!(log instanceof KernelLog)) throw new Error(log.unavailable);
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(kills).toEqual([]);
      appendFileSync(device, MOUNT);
      await new Promise((r) => setTimeout(r, 100));
      expect(kills.map((k) => k.name)).toEqual(['mount']);
    } finally {
      log.close();
    }
  });

  it('onDemand: reads nothing until follow(), then what was logged before the start too, then what comes', async () => {
    const device = path.join(dir, 'kmsg-follow');
    writeFileSync(device, '');
    const kills: string[] = [];
    const log = KernelLog.start({ device, pollMs: 10, onDemand: true, onRecord: (r: AuditRecord) => void (seccompKillOf(r) && kills.push(seccompKillOf(r)!.name)) });
    if (!(log instanceof KernelLog)) throw new Error(log.unavailable);
    try {
      appendFileSync(device, SOCKETCALL_32);
      await new Promise((r) => setTimeout(r, 50));
      expect(kills).toEqual([]);
      log.follow();
      expect(kills).toEqual(['socketcall']);
      appendFileSync(device, MOUNT);
      await new Promise((r) => setTimeout(r, 100));
      expect(kills).toEqual(['socketcall', 'mount']);
    } finally {
      log.close();
    }
  });

  it('says why when the log cannot be read', () => {
    const r = KernelLog.start({ device: path.join(dir, 'missing'), onRecord: () => undefined });
    expect(r).toEqual({ unavailable: expect.stringContaining('ENOENT') });
  });
});

describe('AuditDaemonLog', () => {
  const line = (serial: number) =>
    `type=SECCOMP msg=audit(1795559066.767:${serial}): auid=4294967295 uid=10001 gid=1042733371 ses=4294967295 pid=6650 comm="python3" exe="/usr/bin/python3.11" sig=31 arch=c000003e syscall=165 compat=0 ip=0x0 code=0x80000000\n`;

  it('reads from the end, whole lines only, and from the start of a file that replaced it (rotation)', async () => {
    const file = path.join(dir, 'audit.log');
    writeFileSync(file, line(1));
    const serials: number[] = [];
    const log = AuditDaemonLog.start({ file, pollMs: 10, onRecord: (r: AuditRecord) => void (seccompKillOf(r) && serials.push(r.serial)) });
    if (!(log instanceof AuditDaemonLog)) throw new Error(log.unavailable);
    try {
      const half = line(2).length >> 1;
      appendFileSync(file, line(2).slice(0, half));
      await new Promise((r) => setTimeout(r, 50));
      expect(serials).toEqual([]);
      appendFileSync(file, line(2).slice(half) + 'type=SYSCALL msg=audit(1795559066.767:3): arch=c000003e\n');
      await vi.waitFor(() => expect(serials).toEqual([2]));
      renameSync(file, `${file}.1`);
      writeFileSync(file, line(4));
      await vi.waitFor(() => expect(serials).toEqual([2, 4]));
    } finally {
      log.close();
    }
  });
});

describe('KernelWatch', () => {
  it('keeps only kills of our plugins (by group), and hands one to the exit that asks for it, waiting for the record', async () => {
    const device = path.join(dir, 'kmsg-watch');
    writeFileSync(device, '');
    const seen: string[] = [];
    const watch = new KernelWatch({
      log: silentLogger,
      uid: 10001,
      ownerOf: (k) => (k.gid === 1042733371 ? 'attacker' : undefined),
      onKill: (plugin, k) => seen.push(`${plugin}:${k.name}`),
      kernelLog: { device, pollMs: 10 },
      auditLog: path.join(dir, 'no-audit.log'),
    });
    try {
      const since = Date.now();
      const taken = watch.take('attacker', since, 2_000);
      appendFileSync(device, SOCKETCALL_32); // gid 10001: not a plugin of this controller
      await new Promise((r) => setTimeout(r, 50));
      appendFileSync(device, MOUNT);
      expect((await taken)?.name).toBe('mount');
      expect(seen).toEqual(['attacker:mount']);
      // Taken once: a second exit gets nothing (after waiting its time).
      expect(await watch.take('attacker', since, 50)).toBeUndefined();
    } finally {
      watch.close();
    }
  });

  it('on demand (a one-shot run): reads nothing until take asks, then what the log holds, taking only kills logged since the watch began', async () => {
    const watchOf = (device: string, seen: string[]) =>
      new KernelWatch({
        log: silentLogger,
        uid: 10001,
        onDemand: true,
        ownerOf: (k) => (k.gid === 1042733371 ? 'attacker' : undefined),
        onKill: (plugin, k) => seen.push(`${plugin}:${k.serial}`),
        kernelLog: { device, pollMs: 10 },
        auditLog: path.join(dir, 'no-audit.log'),
      });
    // This run's kill, logged before anything reads the log (a file gives one record per read only when it holds one).
    const ours = path.join(dir, 'kmsg-on-demand');
    writeFileSync(ours, '');
    const seen: string[] = [];
    const watch = watchOf(ours, seen);
    try {
      const since = Date.now();
      writeFileSync(ours, MOUNT.replace('audit(1795559066.767:77)', `audit(${((since + 1_000) / 1000).toFixed(3)}:78)`));
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual([]);
      expect(await watch.take('attacker', since, 2_000)).toMatchObject({ name: 'mount', serial: 78 });
      expect(seen).toEqual(['attacker:78']);
    } finally {
      watch.close();
    }
    // A kill of the same plugin's group logged before the watch began (an earlier run with the same instance): never taken.
    const old = path.join(dir, 'kmsg-on-demand-old');
    writeFileSync(old, MOUNT);
    const seenOld: string[] = [];
    const later = watchOf(old, seenOld);
    try {
      expect(await later.take('attacker', 0, 100)).toBeUndefined();
      expect(seenOld).toEqual([]);
    } finally {
      later.close();
    }
  });

  it('without a readable kernel log, take answers at once and the message says the call is unknown', async () => {
    const watch = new KernelWatch({ log: silentLogger, uid: 10001, ownerOf: () => 'x', kernelLog: { device: path.join(dir, 'missing') }, auditLog: path.join(dir, 'no-audit.log') });
    expect(watch.unavailable).toContain('ENOENT');
    expect(await watch.take('x', 0, 60_000)).toBeUndefined();
    expect(seccompKillMessage('x', undefined)).toBe('plugin x: the kernel killed it (SIGSYS) for a system call its seccomp profile forbids (which one is not known: no kernel record of it was read); the plugin is stopped, not restarted');
    watch.close();
  });
});
