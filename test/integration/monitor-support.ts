import type Dockerode from 'dockerode';
import { afterAll } from 'vitest';
import { LABEL, ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { ResourceMonitor, type ResourceViolation, type WatchedLimits } from '../../src/monitor/index.js';
import { NO_RULES, type EffectiveMonitoring } from '../../src/monitor/rules.js';
import { cpuShares, CPU_PERIOD_US } from '../../src/sandbox/container-spec.js';
import { docker, instance, sleep } from './support.js';

/** The image the probes run in: the Python runtime (python3 as the plugin user), built by the global setup. */
export const PROBE_IMAGE = 'logomesh/runtime-python:latest';
const MB = 1024 * 1024;

export interface ProbeLimits {
  memoryMB?: number;
  cpuPercent?: number;
  processes?: number;
  fileHandles?: number;
  tmpMB?: number;
}

export interface Probe {
  readonly container: Dockerode.Container;
  readonly id: string;
  readonly pid: number;
  readonly plugin: string;
  readonly limits: WatchedLimits;
  /** Run a Python program in the container (the plugin user); resolves with its exit code and output. */
  python(code: string): Promise<{ exitCode: number | null; output: string }>;
  /** Start a Python program in the container and return at once (it runs on). */
  pythonDetached(code: string): Promise<void>;
}

const created: Dockerode.Container[] = [];
afterAll(async () => {
  for (const c of created.splice(0)) await c.remove({ force: true }).catch(() => undefined);
});

/**
 * A container with the limits a plugin gets (memory without swap, CFS quota and CPU shares,
 * pids, nofile, a size-limited /tmp, read-only root, no capabilities, no network), idle until
 * a test runs something in it with `python`. Removed after the file's tests.
 */
export async function startProbe(plugin: string, l: ProbeLimits = {}): Promise<Probe> {
  const d = await docker();
  const limits: WatchedLimits = {
    memoryBytes: (l.memoryMB ?? 64) * MB,
    cpuPercent: l.cpuPercent ?? 50,
    processes: l.processes ?? 32,
    fileHandles: l.fileHandles ?? 64,
    tmpBytes: (l.tmpMB ?? 4) * MB,
    networkConnections: 0,
  };
  const container = await d.createContainer({
    Image: PROBE_IMAGE,
    Cmd: ['python3', '-c', 'import time\nwhile True: time.sleep(3600)'],
    User: '10001:10001',
    Labels: { ...ownerLabels('test', instance()), [LABEL.plugin]: plugin },
    HostConfig: {
      Memory: limits.memoryBytes,
      MemorySwap: limits.memoryBytes,
      CpuPeriod: CPU_PERIOD_US,
      CpuQuota: Math.round((limits.cpuPercent / 100) * CPU_PERIOD_US),
      CpuShares: cpuShares(limits.cpuPercent),
      PidsLimit: limits.processes,
      Ulimits: [{ Name: 'nofile', Soft: limits.fileHandles, Hard: limits.fileHandles }],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,nosuid,nodev,noexec,size=${l.tmpMB ?? 4}m,mode=1777` },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      NetworkMode: 'none',
      Init: true,
    },
  });
  created.push(container);
  await container.start();
  const info = await container.inspect();
  const run = async (code: string, detach: boolean) => {
    const exec = await container.exec({ Cmd: ['python3', '-c', code], AttachStdout: !detach, AttachStderr: !detach, User: '10001:10001' });
    if (detach) {
      await exec.start({ Detach: true });
      return { exitCode: null, output: '' };
    }
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((r) => stream.on('end', r));
    return { exitCode: (await exec.inspect()).ExitCode, output: Buffer.concat(chunks).toString('latin1') };
  };
  return {
    container,
    id: container.id,
    pid: info.State.Pid,
    plugin,
    limits,
    python: (code) => run(code, false),
    pythonDetached: async (code) => void (await run(code, true)),
  };
}

/** A monitor for a test file, with its violations recorded; closed after the file's tests. */
export async function startMonitor(opts: { pollMs?: number; slowReadsPerSecond?: number; connections?: (plugin: string) => number | undefined } = {}): Promise<{ monitor: ResourceMonitor; seen: ResourceViolation[] }> {
  const monitor = await ResourceMonitor.create({
    docker: await docker(),
    log: silentLogger,
    pollMs: opts.pollMs ?? 200,
    slowEvery: 1,
    ...(opts.slowReadsPerSecond !== undefined ? { slowReadsPerSecond: opts.slowReadsPerSecond } : {}),
    ...(opts.connections ? { connections: opts.connections } : {}),
  });
  const seen: ResourceViolation[] = [];
  monitor.on('violation', (v) => seen.push(v));
  afterAll(() => monitor.close());
  return { monitor, seen };
}

/** Watch a probe with the given rules. */
export function watchProbe(monitor: ResourceMonitor, p: Probe, rules: Partial<EffectiveMonitoring> = {}, limits: Partial<WatchedLimits> = {}): Promise<void> {
  return monitor.watch({ pluginId: p.plugin, pid: p.pid, limits: { ...p.limits, ...limits }, rules: { ...NO_RULES, ...rules } });
}

/** Wait (up to `ms`) for `count` violations matching `match`, then a little longer to see that no more come. */
export async function violations(seen: ResourceViolation[], match: (v: ResourceViolation) => boolean, count = 1, ms = 15_000): Promise<ResourceViolation[]> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && seen.filter(match).length < count) await sleep(20);
  // Generous: a second report of the same crossing would come within a few polls.
  await sleep(1500);
  return seen.filter(match);
}
