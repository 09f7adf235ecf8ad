import { AUDIT_ARCHES, SYSCALL_NAMES } from './syscall-names.js';

/**
 * One kernel audit record, from either place it shows up: a /dev/kmsg record
 * ("<prio>,<seq>,<usec>,<flags>;audit: type=1300 audit(<time>:<serial>): ...", where the
 * kernel prints it when no audit daemon takes it) or a line of the audit daemon's log
 * ("type=SYSCALL msg=audit(<time>:<serial>): ...").
 */
export interface AuditRecord {
  readonly type: number;
  /** The record's own time, ms since the epoch. */
  readonly at: number;
  /** Serial number: the records of one event share it (and `at`). */
  readonly serial: number;
  readonly fields: Readonly<Record<string, string>>;
}

/** Record types LogoMesh reads (include/uapi/linux/audit.h), by number and by the audit daemon's names. */
const AUDIT_TYPE = { SYSCALL: 1300, PATH: 1302, SECCOMP: 1326 } as const;
const TYPE_BY_NAME: Readonly<Record<string, number>> = AUDIT_TYPE;

export function parseAuditRecord(record: string): AuditRecord | undefined {
  const text = (record.startsWith('type=') ? record : record.slice(record.indexOf(';') + 1)).split('\n', 1)[0]!;
  const head = /^(?:audit: type=(\d+) |type=([A-Z_]+) msg=)audit\((\d+)\.(\d+):(\d+)\):/.exec(text);
  if (!head) return undefined;
  const type = head[1] !== undefined ? Number(head[1]) : TYPE_BY_NAME[head[2]!];
  if (type === undefined) return undefined;
  return {
    type,
    at: Number(head[3]) * 1000 + Number(head[4]!.slice(0, 3).padEnd(3, '0')),
    serial: Number(head[5]),
    fields: fields(text.slice(head[0].length)),
  };
}

/** Fields a process record carries: who made the call, and which call. */
interface ProcessFields {
  /** The process, in the host's pid namespace. */
  readonly pid: number;
  readonly uid: number;
  /** The process's (real) group: each plugin has its own (pluginGid), which ties the record to it. */
  readonly gid: number;
  readonly comm: string;
  readonly exe: string;
  /** The system call's number, and its name where the architecture is known. */
  readonly syscall: number;
  readonly name: string;
  /** The architecture the call was made through: `x86_64`, `i386 (32-bit)`, or the raw audit arch. */
  readonly arch: string;
  readonly at: number;
  readonly serial: number;
}

/** A system call the kernel killed a process for (seccomp's SCMP_ACT_KILL_PROCESS). */
export interface SeccompKill extends ProcessFields {
  readonly signal: number;
}

/** A system call the kernel refused inside the sandbox, reported by one of LogoMesh's audit rules. */
export interface KernelDenial extends ProcessFields {
  /** The rule's key (`logomesh-rofs`, ...), which says what kind of denial it is. */
  readonly key: string;
  /** The error it failed with: `EROFS`, `ENOSPC`, ... */
  readonly errno: string;
  /** The paths the call named, as the process gave them. */
  readonly paths: readonly string[];
}

function processFields(r: AuditRecord): ProcessFields | undefined {
  const f = r.fields;
  const syscall = Number(f.syscall);
  if (!f.pid || !Number.isInteger(syscall)) return undefined;
  const arch = f.arch ?? '';
  return {
    pid: Number(f.pid),
    uid: Number(f.uid),
    gid: Number(f.gid),
    comm: f.comm ?? '',
    exe: f.exe ?? '',
    syscall,
    name: SYSCALL_NAMES[arch]?.[String(syscall)] ?? `syscall ${syscall}`,
    arch: AUDIT_ARCHES[arch] ?? arch,
    at: r.at,
    serial: r.serial,
  };
}

/**
 * A seccomp kill, or undefined for anything else. Only records with a signal (sig=31,
 * SIGSYS) are kills; LogoMesh's profiles never ask the kernel to log anything else.
 */
export function seccompKillOf(r: AuditRecord | undefined): SeccompKill | undefined {
  if (r?.type !== AUDIT_TYPE.SECCOMP || !Number(r.fields.sig)) return undefined;
  const p = processFields(r);
  return p && { ...p, signal: Number(r.fields.sig) };
}

/** Parse a record straight to a seccomp kill (see parseAuditRecord for the forms). */
export function parseSeccompRecord(record: string): SeccompKill | undefined {
  return seccompKillOf(parseAuditRecord(record));
}

/** The errno values LogoMesh's audit rules name (x86_64 numbering). */
const ERRNO_NAMES: Readonly<Record<string, string>> = { '-1': 'EPERM', '-11': 'EAGAIN', '-13': 'EACCES', '-24': 'EMFILE', '-28': 'ENOSPC', '-30': 'EROFS' };

/** The prefix of LogoMesh's audit rule keys (src/provision/kernel-audit.rules). */
const RULE_KEY_PREFIX = 'logomesh-';

/**
 * Puts the records of one event together: a SYSCALL record of one of LogoMesh's rules, and
 * the PATH records after it with the same serial. An event is complete when a record of
 * another event arrives, or when `flush` is called (after each read of the logs).
 */
export class DenialAssembler {
  private open?: { record: AuditRecord; paths: { name: string; parent: boolean }[] };

  constructor(private readonly onDenial: (d: KernelDenial) => void) {}

  add(r: AuditRecord): void {
    if (this.open && (r.serial !== this.open.record.serial || r.at !== this.open.record.at)) this.flush();
    if (r.type === AUDIT_TYPE.SYSCALL && r.fields.key?.startsWith(RULE_KEY_PREFIX)) this.open = { record: r, paths: [] };
    else if (r.type === AUDIT_TYPE.PATH && this.open && r.fields.name !== undefined && r.fields.name !== '(null)') {
      this.open.paths.push({ name: r.fields.name, parent: r.fields.nametype === 'PARENT' });
    }
  }

  flush(): void {
    const open = this.open;
    delete this.open;
    if (!open) return;
    const p = processFields(open.record);
    if (!p) return;
    const exit = open.record.fields.exit ?? '';
    // The kernel names the parent folder too (of a file it would have created); the file itself, when named, says more.
    const named = open.paths.filter((x) => !x.parent);
    const paths = (named.length ? named : open.paths).map((x) => x.name);
    this.onDenial({ ...p, key: open.record.fields.key!, errno: ERRNO_NAMES[exit] ?? `error ${exit}`, paths });
  }
}

/** "kauditd_printk_skb: N callbacks suppressed": N audit records the kernel's rate limit dropped. */
export function parseSuppressed(record: string): number | undefined {
  const m = /kauditd_printk_skb: (\d+) callbacks suppressed/.exec(record);
  return m ? Number(m[1]) : undefined;
}

/**
 * `key=value` pairs; values quoted ("..."), or in hex when they hold odd characters (the
 * fields that may: comm, exe, name, key, proctitle), or bare.
 */
function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  // The audit daemon appends interpreted fields after a \x1d: not ours to read.
  for (const m of text.split('\x1d', 1)[0]!.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
    const raw = m[2]!;
    out[m[1]!] = raw.startsWith('"') ? raw.slice(1, -1) : /^(comm|exe|name|key|proctitle)$/.test(m[1]!) && /^([0-9A-F]{2})+$/.test(raw) ? Buffer.from(raw, 'hex').toString() : raw;
  }
  return out;
}
