import { readFileSync, readdirSync } from 'node:fs';
import type Dockerode from 'dockerode';
import type { Docker } from '../../src/engine/docker.js';
import { LABEL } from '../../src/labels.js';
import { Controller } from '../../src/controller/controller.js';
import type { Runtime } from '../../src/manifest/types.js';
import { p2pLatency } from './p2p-latency.js';
import type { RawEcho } from './raw-echo.js';
import { fmt, nowUs, pct, timedMs, type Row } from './stats.js';
import { throughputRow } from './throughput.js';

/** Host -> plugin calls per runtime, on the example plugins' real methods. */
const HOST_CALLS: { runtime: Runtime; plugin: string; method: string; data: unknown }[] = [
  { runtime: 'node', plugin: 'echo-node', method: 'echo', data: { text: 'hello world' } },
  { runtime: 'python', plugin: 'echo-python', method: 'echo', data: { text: 'hello world' } },
  { runtime: 'go', plugin: 'tokenizer', method: 'tokenize', data: { text: 'hello world' } },
  { runtime: 'rust', plugin: 'hasher', method: 'digest', data: { text: 'hello world' } },
];

/** Which example plugin stands for each runtime in load-to-ready and memory. */
const BY_RUNTIME: Record<Runtime, string> = { node: 'thoughts', python: 'analyzer', go: 'tokenizer', rust: 'hasher' };

/** Load-to-ready targets per runtime (ms, p50), each also within 1.5x a bare start of the image. */
const START_TARGET_MS: Record<Runtime, number> = { node: 600, python: 400, go: 300, rust: 300 };

/** Idle memory targets per runtime (MiB), and for Node.js also at most 1.6x a bare idle node. */
const MEMORY_TARGET_MIB: Record<Runtime, number> = { node: 16, python: 16, go: 8, rust: 8 };

/**
 * A bare idle process of each language for the memory baseline. A compiled plugin's binary
 * cannot idle without a hub (it exits), so Go and Rust are compared with an idle `sleep`
 * in a minimal Debian container: the floor any container costs.
 */
const BARE_IDLE: Record<Runtime, { image?: string; cmd: string[] }> = {
  python: { cmd: ['python3', '-c', 'import time; time.sleep(3600)'] },
  node: { cmd: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] },
  go: { image: 'logomesh/runtime-rust:latest', cmd: ['sleep', '3600'] },
  rust: { image: 'logomesh/runtime-rust:latest', cmd: ['sleep', '3600'] },
};

/** The image and command of a bare start (the plugin's own) and a bare idle process. */
async function bareOf(docker: Docker, containerId: string, runtime: Runtime): Promise<{ image: string; cmd: string[]; idleImage: string; idleCmd: string[] }> {
  const info = await docker.getContainer(containerId).inspect();
  const idle = BARE_IDLE[runtime];
  return { image: info.Config.Image, cmd: info.Config.Cmd as string[], idleImage: idle.image ?? info.Config.Image, idleCmd: idle.cmd };
}

export async function controllerBench(host: Controller, docker: Docker, rounds: number, instance: string, echo: RawEcho): Promise<Row[]> {
  const rows: Row[] = [];
  const present = new Set(host.list().filter((p) => p.state === 'ready').map((p) => p.id));

  // Plugin -> hub -> plugin, timed inside the calling plugin, in steady state (p2p-latency.ts).
  rows.push(...(await p2pLatency(host, present, rounds)));

  // Host -> plugin, per runtime.
  for (const c of HOST_CALLS) {
    if (!present.has(c.plugin)) continue;
    for (let i = 0; i < 2_000; i++) await host.call(c.plugin, c.method, c.data);
    const us: number[] = [];
    for (let i = 0; i < rounds * 50; i++) {
      const t = nowUs();
      await host.call(c.plugin, c.method, c.data);
      us.push(nowUs() - t);
    }
    rows.push(
      { id: `latency.host.${c.plugin}.p50`, section: 'latency', name: `host -> ${c.plugin} (${c.runtime}) p50`, subject: 'host -> hub -> plugin', baseline: 'raw ws echo, two host processes', value: pct(us, 50), baselineValue: NaN, unit: 'us' },
      { id: `latency.host.${c.plugin}.p99`, section: 'latency', name: `host -> ${c.plugin} (${c.runtime}) p99`, subject: 'host -> hub -> plugin', baseline: 'raw ws echo, two host processes', value: pct(us, 99), baselineValue: NaN, unit: 'us' },
    );
  }

  // Throughput with many calls in flight, plugin to plugin, in windows alternating with the raw echo's.
  if (present.has('caller-node') && present.has('echo-node')) rows.push(await throughputRow(host, echo, Math.max(3, rounds)));

  // Load to ready per runtime, images built: stop, then time start() until hello. Node.js also
  // without the CPU quota of its example (thoughts runs at 25%; echo-node at 100%).
  for (const [runtime, id] of [...(Object.entries(BY_RUNTIME) as [Runtime, string][]), ['node', 'echo-node'] as [Runtime, string]]) {
    if (!present.has(id)) continue;
    const bare = await bareOf(docker, host.status(id).containerId!, runtime);
    const subject: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await host.stop(id);
      subject.push(await timedMs(() => host.start(id)));
      let started: Awaited<ReturnType<typeof bareStart>> | undefined;
      baseline.push(await timedMs(async () => (started = await bareStart(docker, bare.image, bare.cmd, instance))));
      if (started) await removeRacing(started);
    }
    const quota = host.list().find((p) => p.id === id) ? (await docker.getContainer(host.status(id).containerId!).inspect()).HostConfig.CpuQuota ?? 0 : 0;
    const value = pct(subject, 50);
    const baselineValue = pct(baseline, 50);
    rows.push({
      id: `start.${id}`,
      section: 'start',
      name: `load to ready: ${id} (${runtime}, CPU quota ${Math.round(quota / 1000)}%)`,
      subject: 'start() until the plugin said hello',
      baseline: `bare create + start of ${bare.image}`,
      value,
      baselineValue,
      unit: 'ms',
      target: `<= ${START_TARGET_MS[runtime]} ms and <= 1.5x the bare start`,
      met: value <= START_TARGET_MS[runtime] && value <= 1.5 * baselineValue,
    });
  }

  // Memory added per idle plugin: the container's RSS plus its shim's, beside a bare idle process.
  await new Promise((r) => setTimeout(r, 2_000));
  for (const [runtime, id] of Object.entries(BY_RUNTIME) as [Runtime, string][]) {
    const status = host.list().find((p) => p.id === id);
    if (!status?.containerId) continue;
    const { idleImage: image, idleCmd: cmd } = await bareOf(docker, status.containerId, runtime);
    const { anon: subject, file: subjectFile } = await containerMemory(docker, status.containerId);
    const bare = await docker.createContainer({ Image: image, Cmd: cmd, Labels: { [LABEL.owner]: 'logomesh', [LABEL.instance]: instance }, HostConfig: { NetworkMode: 'none', Init: true } });
    try {
      await bare.start();
      await new Promise((r) => setTimeout(r, 1_500));
      const { anon: base, file: baseFile } = await containerMemory(docker, bare.id);
      const value = subject / 2 ** 20;
      const baselineValue = base / 2 ** 20;
      const limit = MEMORY_TARGET_MIB[runtime];
      rows.push({
        id: `memory.${id}`,
        section: 'memory',
        name: `idle ${id} (${runtime})`,
        subject: 'anonymous memory of the container + its shim',
        baseline: `bare idle ${cmd[0]} in ${image}, the same way`,
        value,
        baselineValue,
        unit: 'MiB',
        target: runtime === 'node' ? `<= ${limit} MiB and <= 1.6x the bare idle node` : `<= ${limit} MiB`,
        met: value <= limit && (runtime !== 'node' || value <= 1.6 * baselineValue),
      });
      // For the record: the same with the file pages of the image charged to its cgroup (mapped_file; shared with every container of the image).
      rows.push({
        id: `memory.${id}.with-file-pages`,
        section: 'memory',
        name: `idle ${id} (${runtime}), with the mapped file pages charged to its cgroup`,
        subject: 'the above + mapped_file of the cgroup',
        baseline: `bare idle ${cmd[0]}, the same way`,
        value: (subject + subjectFile) / 2 ** 20,
        baselineValue: (base + baseFile) / 2 ** 20,
        unit: 'MiB',
        target: 'stated',
      });
    } finally {
      await bare.remove({ force: true });
    }
  }
  return rows;
}

/** Create and start a container of the image, as a plain `docker run -d` would. */
/**
 * Remove a bare start's container. Its command (the plugin's, without a hub) ends by itself, and
 * the engine (20.10) answers a forced removal that meets that end with a 500 ("Could not kill
 * running container ..., cannot remove - ... is not running"): then it is removed again.
 */
async function removeRacing(c: Dockerode.Container): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await c.remove({ force: true });
      return;
    } catch (err) {
      if (attempt === 4 || !/is not running/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function bareStart(docker: Docker, image: string, cmd: string[], instance: string) {
  const c = await docker.createContainer({ Image: image, Cmd: cmd, Labels: { [LABEL.owner]: 'logomesh', [LABEL.instance]: instance }, HostConfig: { NetworkMode: 'none' } });
  await c.start();
  return c;
}

/**
 * What one more container of this plugin costs the host: the anonymous memory of its cgroup
 * (its processes' heaps and stacks; memory.stat `rss`) and the private memory of its
 * containerd shim. File pages (the runtime's binary and libraries, from the image) are left
 * out, for the plugin and its baseline alike: every container of the image shares them, and
 * the kernel charges them to whichever container read them first, which made the figure
 * depend on the order containers started in (up to 13 MiB for a Node.js plugin).
 */
async function containerMemory(docker: Docker, id: string): Promise<{ anon: number; file: number }> {
  const s = (await docker.getContainer(id).stats({ stream: false })) as unknown as { memory_stats: { stats?: Record<string, number> } };
  const st = s.memory_stats.stats ?? {};
  return { anon: (st.rss ?? st.anon ?? 0) + (st.shmem ?? 0) + shimPrivate(id), file: st.mapped_file ?? st.file_mapped ?? 0 };
}

function shimPrivate(id: string): number {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('containerd-shim') || !cmd.includes(id)) continue;
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
      return (kb('Private_Dirty') + kb('Private_Clean')) * 1024;
    } catch {
      // The process went away while we looked.
    }
  }
  return 0;
}

export function describeRows(rows: readonly Row[]): string[] {
  return rows.map((r) => `| ${r.name} | ${fmt(r.value, r.unit === 'MiB' ? 1 : 0)} ${r.unit} | ${r.baseline} | ${fmt(r.baselineValue, r.unit === 'MiB' ? 1 : 0)} ${r.unit} | ${Number.isFinite(r.baselineValue) ? fmt(r.value / r.baselineValue, 2) : 'n/a'} |`);
}
