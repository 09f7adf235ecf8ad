/**
 * The resource monitor benchmark's containers (test/bench/monitor.ts): an idle Python
 * container with a plugin's limits, and the drivers run in it that cause each kernel event
 * and print CLOCK_MONOTONIC (`T <ns>`) just before it.
 */
import { readFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import type { Docker } from '../../src/engine/docker.js';
import { LABEL, ownerLabels } from '../../src/labels.js';
import { python } from '../../src/runtimes/python.js';
import { cpuShares, CPU_PERIOD_US } from '../../src/sandbox/container-spec.js';

const MiB = 1024 * 1024;
/** The user the probe and its drivers run as (the OOM kill records name it). */
export const PROBE_UID = 10001;
const USER = `${PROBE_UID}:${PROBE_UID}`;

export interface BenchProbe {
  readonly container: Dockerode.Container;
  readonly pid: number;
  readonly plugin: string;
}

export async function probe(docker: Docker, instance: string, plugin: string, memoryMB: number, processes: number): Promise<BenchProbe> {
  const c = await docker.createContainer({
    Image: python.tag,
    Cmd: ['python3', '-c', 'import time\nwhile True: time.sleep(3600)'],
    User: USER,
    Labels: { ...ownerLabels('test', instance), [LABEL.plugin]: plugin },
    HostConfig: {
      Memory: memoryMB * MiB,
      MemorySwap: memoryMB * MiB,
      CpuPeriod: CPU_PERIOD_US,
      CpuQuota: CPU_PERIOD_US / 2,
      CpuShares: cpuShares(50),
      PidsLimit: processes,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=4m,mode=1777' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      NetworkMode: 'none',
      Init: true,
    },
  });
  await c.start();
  return { container: c, pid: (await c.inspect()).State.Pid, plugin };
}

/** Run a Python driver in the probe; resolves with the CLOCK_MONOTONIC stamps it printed as `T <ns>`. */
export async function drive(p: BenchProbe, code: string): Promise<bigint[]> {
  const exec = await p.container.exec({ Cmd: ['python3', '-u', '-c', code], AttachStdout: true, AttachStderr: true, User: USER });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((r) => stream.on('end', r));
  return [...Buffer.concat(chunks).toString('latin1').matchAll(/T (\d+)/g)].map((m) => BigInt(m[1]!));
}

export const OOM_DRIVER = (n: number) => `
import mmap, os, struct, time
stamp = mmap.mmap(-1, 8)
for _ in range(${n}):
    pid = os.fork()
    if pid == 0:
        with open('/proc/self/oom_score_adj', 'w') as f: f.write('1000')
        b = []
        while True:
            stamp[0:8] = struct.pack('Q', time.monotonic_ns())
            b.append(b'x' * (1 << 20))
    os.waitpid(pid, 0)
    print(f"T {struct.unpack('Q', stamp[0:8])[0]}")
    time.sleep(0.3)
`;

/** Forks until one is refused, `n` times (children killed and reaped, then `pauseS` between), printing `T <ns>` before each refused fork. */
export const PIDS_DRIVER = (n: number, pauseS = 0.8) => `
import os, signal, time
for _ in range(${n}):
    kids = []
    while True:
        t = time.monotonic_ns()
        try:
            pid = os.fork()
        except OSError:
            print(f'T {t}', flush=True)
            break
        if pid == 0:
            time.sleep(60); os._exit(0)
        kids.append(pid)
    for k in kids: os.kill(k, signal.SIGKILL)
    for k in kids: os.waitpid(k, 0)
    time.sleep(${pauseS})
`;

export const THRESHOLD_DRIVER = (n: number) => `
import mmap, time
def usage():
    with open('/sys/fs/cgroup/memory/memory.usage_in_bytes') as f: return int(f.read())
def touch(size):
    m = mmap.mmap(-1, size)
    for i in range(0, size, 4096): m[i] = 1
    return m
for _ in range(${n}):
    # Up to 2 MiB under the threshold (32 MiB), then the stamp, then 4 MiB more: the crossing.
    base = touch(max(4096, (30 << 20) - usage()) // 4096 * 4096)
    t = time.monotonic_ns()
    more = touch(4 << 20)
    print(f'T {t}')
    time.sleep(0.1)
    base.close(); more.close()
    time.sleep(0.2)
`;

/** The probe's CPU quota so far: periods throttled and the time throttled (ns), from its cpu cgroup's cpu.stat. */
export interface Throttling {
  readonly periods: number;
  readonly ns: number;
}

/** A reader of the probe's cpu.stat (cgroup v1 or v2), found from its process. */
export function throttlingOf(pid: number): () => Throttling {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('cpu'));
  const v2 = lines.find((l) => l.startsWith('0::'));
  const file = v1 ? `/sys/fs/cgroup/${v1[1]}/${v1[2]}/cpu.stat` : `/sys/fs/cgroup/${v2!.slice(3)}/cpu.stat`;
  return () => {
    const kv = new Map(readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string]));
    const usec = kv.get('throttled_usec');
    return { periods: Number(kv.get('nr_throttled') ?? 0), ns: usec !== undefined ? Number(usec) * 1000 : Number(kv.get('throttled_time') ?? 0) };
  };
}
