import path from 'node:path';
import { ioBytes, keyValues, openIfPresent, single, type OpenFile } from './cgroup-file.js';
import type { CgroupDirs } from './cgroups.js';

/** One read of a container's cgroup counters. Absent figures are 0 (the file does not exist here). */
export interface CgroupSample {
  /** performance.now() when read, ms. */
  readonly at: number;
  readonly memoryUsage: number;
  /** Page cache the kernel can drop at once (inactive file pages): not counted as used. */
  readonly inactiveFile: number;
  readonly memoryPeak: number;
  /** Bytes; Infinity when not limited. */
  readonly memoryLimit: number;
  readonly oomKills: number;
  /** CPU time used, nanoseconds. */
  readonly cpuUsageNs: number;
  /** The CFS quota as percent of one core; Infinity when not limited. */
  readonly cpuLimitPercent: number;
  readonly cpuPeriods: number;
  readonly cpuThrottled: number;
  readonly pids: number;
  readonly pidsMax: number;
  /** Forks refused at pids.max (pids.events `max`). */
  readonly pidsRefused: number;
  readonly ioRead: number;
  readonly ioWrite: number;
}

type FileName =
  | 'usage'
  | 'peak'
  | 'limit'
  | 'stat'
  | 'oom'
  | 'cpuUsage'
  | 'cpuStat'
  | 'quota'
  | 'period'
  | 'pids'
  | 'pidsMax'
  | 'pidsEvents'
  | 'io';

/** The file of each figure under cgroup v1 (controller dir, file name). */
const V1: Record<FileName, [keyof CgroupDirs, string]> = {
  usage: ['memory', 'memory.usage_in_bytes'],
  peak: ['memory', 'memory.max_usage_in_bytes'],
  limit: ['memory', 'memory.limit_in_bytes'],
  stat: ['memory', 'memory.stat'],
  oom: ['memory', 'memory.oom_control'],
  cpuUsage: ['cpuacct', 'cpuacct.usage'],
  cpuStat: ['cpu', 'cpu.stat'],
  quota: ['cpu', 'cpu.cfs_quota_us'],
  period: ['cpu', 'cpu.cfs_period_us'],
  pids: ['pids', 'pids.current'],
  pidsMax: ['pids', 'pids.max'],
  pidsEvents: ['pids', 'pids.events'],
  io: ['blkio', 'blkio.throttle.io_service_bytes_recursive'],
};

/** Under cgroup v2: one dir. memory.peak needs Linux 5.19; cpu.max holds quota and period. */
const V2: Record<FileName, string | undefined> = {
  usage: 'memory.current',
  peak: 'memory.peak',
  limit: 'memory.max',
  stat: 'memory.stat',
  oom: 'memory.events',
  cpuUsage: undefined,
  cpuStat: 'cpu.stat',
  quota: 'cpu.max',
  period: undefined,
  pids: 'pids.current',
  pidsMax: 'pids.max',
  pidsEvents: 'pids.events',
  io: 'io.stat',
};

/**
 * Reads a container's counters from its cgroup files, kept open (pread at offset 0 each
 * time). Files a kernel does not have are skipped and read as 0.
 */
export class CgroupSampler {
  private readonly files = new Map<FileName, OpenFile>();
  /** The highest usage seen, for kernels without a peak file (v2 before 5.19). */
  private seenPeak = 0;

  constructor(readonly dirs: CgroupDirs) {
    for (const name of Object.keys(V1) as FileName[]) {
      let file: string | undefined;
      if (dirs.version === 1) {
        const [ctl, base] = V1[name];
        const dir = dirs[ctl];
        file = typeof dir === 'string' ? path.join(dir, base) : undefined;
        // blkio without the _recursive file on old kernels.
        if (name === 'io' && file && !openIfPresent(file) && dirs.blkio) file = path.join(dirs.blkio, 'blkio.throttle.io_service_bytes');
      } else {
        const base = V2[name];
        file = base && dirs.unified ? path.join(dirs.unified, base) : undefined;
      }
      const open = file ? openIfPresent(file) : undefined;
      if (open) this.files.set(name, open);
    }
  }

  /** The path of a figure's file, if this kernel has it (the notification watches use them). */
  pathOf(name: FileName): string | undefined {
    return this.files.get(name)?.path;
  }

  private text(name: FileName): string {
    return this.files.get(name)?.read() ?? '';
  }

  private num(name: FileName): number {
    const t = this.text(name);
    return t === '' ? 0 : single(t);
  }

  /** Read every figure. Throws once the cgroup is gone (ENOENT, ENODEV). */
  sample(): CgroupSample {
    const v1 = this.dirs.version === 1;
    const stat = keyValues(this.text('stat'));
    const cpuStat = keyValues(this.text('cpuStat'));
    const oom = keyValues(this.text('oom'));
    const io = ioBytes(this.text('io'));
    const usage = this.num('usage');
    this.seenPeak = Math.max(this.seenPeak, usage);
    const peak = this.files.has('peak') ? this.num('peak') : this.seenPeak;
    let cpuLimitPercent: number;
    if (v1) {
      const quota = this.num('quota');
      const period = this.num('period');
      cpuLimitPercent = quota > 0 && period > 0 ? (quota / period) * 100 : Infinity;
    } else {
      const [q = 'max', p = '100000'] = this.text('quota').trim().split(' ');
      cpuLimitPercent = q === 'max' || q === '' ? Infinity : (Number(q) / Number(p)) * 100;
    }
    return {
      at: performance.now(),
      memoryUsage: usage,
      inactiveFile: (v1 ? stat.get('total_inactive_file') : stat.get('inactive_file')) ?? 0,
      memoryPeak: peak,
      memoryLimit: this.memoryLimit(),
      oomKills: oom.get('oom_kill') ?? 0,
      cpuUsageNs: v1 ? this.num('cpuUsage') : (cpuStat.get('usage_usec') ?? 0) * 1000,
      cpuLimitPercent,
      cpuPeriods: cpuStat.get('nr_periods') ?? 0,
      cpuThrottled: cpuStat.get('nr_throttled') ?? 0,
      pids: this.num('pids'),
      pidsMax: this.num('pidsMax'),
      pidsRefused: keyValues(this.text('pidsEvents')).get('max') ?? 0,
      ioRead: io.read,
      ioWrite: io.write,
    };
  }

  private memoryLimit(): number {
    const limit = this.num('limit');
    // v1 writes "no limit" as a page-aligned LONG_MAX.
    return limit >= 2 ** 62 ? Infinity : limit;
  }

  /** Only the figures a threshold needs: memory in use (usage less inactive file pages). */
  memoryUsed(): number {
    const stat = keyValues(this.text('stat'));
    const inactive = (this.dirs.version === 1 ? stat.get('total_inactive_file') : stat.get('inactive_file')) ?? 0;
    return Math.max(0, this.num('usage') - inactive);
  }

  oomKills(): number {
    return keyValues(this.text('oom')).get('oom_kill') ?? 0;
  }

  pidsRefused(): number {
    return keyValues(this.text('pidsEvents')).get('max') ?? 0;
  }

  /** CFS periods and throttled periods so far (cpu.stat). */
  cpuStat(): { periods: number; throttled: number } {
    const st = keyValues(this.text('cpuStat'));
    return { periods: st.get('nr_periods') ?? 0, throttled: st.get('nr_throttled') ?? 0 };
  }

  /** Processes now (pids.current). */
  pidsCurrent(): number {
    return this.num('pids');
  }

  /** Processes now, and the limit (Infinity: none). */
  pids(): { current: number; max: number } {
    return { current: this.num('pids'), max: this.num('pidsMax') };
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}
