import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Controller } from '../../src/controller/controller.js';
import type { Docker } from '../../src/engine/docker.js';
import type { Logger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { pluginFolders } from '../../src/manifest/folders.js';
import { benchHome } from './bench-home.js';
import { pct, type Row } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'shm-bench');
const FRAMES = path.join(REPO, 'test', 'fixtures', 'frames-bench');
const MiB = 1024 * 1024;

interface Timed {
  ms: number[];
  /** The allocation's time, when this call made the segment. */
  allocMs?: number | null;
}

/**
 * Shared memory against the hub, Python to Go, both timed inside the Python plugin around
 * whole transfers: 64 MiB written into a segment, its handle sent in a call, the Go plugin
 * mapping it and reading every byte (CRC-32), against the same bytes as base64 in calls of
 * 8 MiB through the hub (message limit raised to 16 MiB for it); and a 1 MiB handoff
 * (write, send handle, read) against the same megabyte through the hub in one call.
 */
export async function sharedMemoryBench(docker: Docker, log: Logger, instance: string, rounds: number): Promise<Row[]> {
  const { home, remove } = benchHome('shm', `${instance}-shm`);
  // The hub's per-plugin rate limit is raised, as for the main throughput row: the rows show what the hub carries.
  const host = await Controller.create({ log, home, docker, progress: process.stderr, startTimeoutMs: 120_000, maxMessageBytes: 16 * MiB, rateLimit: 1_000_000 });
  try {
    host.load([...pluginFolders(FIXTURES), ...pluginFolders(FRAMES)].map((f) => loadManifest(f)));
    await host.startAll();
    const seg = (size: number, n: number) => host.call('shm-producer', 'segment_handoff', { size, rounds: n }, 300_000) as Promise<Timed>;
    const hub = (size: number, chunk: number, n: number) => host.call('shm-producer', 'hub_transfer', { size, chunk, rounds: n }, 300_000) as Promise<Timed>;
    // Warm up both paths (allocation, first mapping, JIT-less but cache-warm).
    const first = await seg(64 * MiB, 2);
    await hub(64 * MiB, 8 * MiB, 1);
    const big = await seg(64 * MiB, rounds);
    const bigHub = await hub(64 * MiB, 8 * MiB, Math.max(3, Math.ceil(rounds / 3)));
    await seg(MiB, 10);
    await hub(MiB, MiB, 10);
    const small = await seg(MiB, rounds * 20);
    const smallHub = await hub(MiB, MiB, rounds * 20);
    // Hub throughput, Node.js to Node.js, 64 calls in flight: msgpack frames against JSON frames.
    const doc = { id: 'a1b2c3', title: 'a document of some size', tags: ['x', 'y', 'z'], rows: Array.from({ length: 40 }, (_, i) => ({ i, name: `row ${i}`, score: i / 7, ok: i % 2 === 0 })) };
    const throughput = async (enc: string, data: unknown) => {
      await host.call(`caller-${enc}`, 'concurrent', { target: `echo-${enc}.echo`, inFlight: 64, ms: 1_000, data }, 60_000);
      const r = (await host.call(`caller-${enc}`, 'concurrent', { target: `echo-${enc}.echo`, inFlight: 64, ms: 3_000, data }, 60_000)) as { calls: number; ms: number };
      return (r.calls / r.ms) * 1000;
    };
    const hello = { text: 'hello world' };
    // Python to Python, sequential calls: the latency each encoding gives.
    const seqUs = async (enc: string, data: unknown) => {
      await host.call(`caller-py${enc}`, 'sequential', { target: `echo-py${enc}.echo`, n: 200, data }, 120_000);
      return pct((await host.call(`caller-py${enc}`, 'sequential', { target: `echo-py${enc}.echo`, n: rounds * 100, data }, 120_000)) as number[], 50);
    };
    const py = { smallMp: await seqUs('msgpack', { text: 'hello world' }), smallJson: await seqUs('json', { text: 'hello world' }), docMp: await seqUs('msgpack', doc), docJson: await seqUs('json', doc) };
    const frames = { smallMp: await throughput('msgpack', hello), smallJson: await throughput('json', hello), docMp: await throughput('msgpack', doc), docJson: await throughput('json', doc) };
    const p50 = pct(big.ms, 50);
    const hubP50 = pct(bigHub.ms, 50);
    const gbps = (64 * MiB) / (p50 / 1000) / 1e9;
    return [
      { section: 'shared memory', name: '64 MiB Python -> Go through a segment, p50', subject: 'write, send handle, map and read all (CRC-32)', baseline: 'same bytes through the hub (base64, 8 MiB calls)', value: p50, baselineValue: hubP50, unit: 'ms', target: '>= 20x faster', met: hubP50 / p50 >= 20 },
      { section: 'shared memory', name: '64 MiB Python -> Go through a segment, throughput', subject: 'bytes / p50 time', baseline: 'through the hub', value: gbps, baselineValue: (64 * MiB) / (hubP50 / 1000) / 1e9, unit: 'GB/s', target: '>= 2 GB/s', met: gbps >= 2 },
      { section: 'shared memory', name: '1 MiB handoff Python -> Go, p50', subject: 'write, send handle, read', baseline: 'same MiB through the hub in one call', value: pct(small.ms, 50), baselineValue: pct(smallHub.ms, 50), unit: 'ms' },
      { section: 'shared memory', name: '1 MiB handoff Python -> Go, p99', subject: 'write, send handle, read', baseline: 'same MiB through the hub in one call', value: pct(small.ms, 99), baselineValue: pct(smallHub.ms, 99), unit: 'ms' },
      { section: 'shared memory', name: 'hub throughput, msgpack frames, small call', subject: 'calls/s, node -> hub -> node, 64 in flight', baseline: 'the same with JSON frames', value: frames.smallMp, baselineValue: frames.smallJson, unit: '/s' },
      { section: 'shared memory', name: 'hub throughput, msgpack frames, 3 KB document', subject: 'calls/s, node -> hub -> node, 64 in flight', baseline: 'the same with JSON frames', value: frames.docMp, baselineValue: frames.docJson, unit: '/s' },
      { section: 'shared memory', name: 'python -> hub -> python p50, msgpack frames, small call', subject: 'sequential calls', baseline: 'the same with JSON frames', value: py.smallMp, baselineValue: py.smallJson, unit: 'us' },
      { section: 'shared memory', name: 'python -> hub -> python p50, msgpack frames, 3 KB document', subject: 'sequential calls', baseline: 'the same with JSON frames', value: py.docMp, baselineValue: py.docJson, unit: 'us' },
      { section: 'shared memory', name: 'allocating a 64 MiB segment', subject: 'allocate (tmpfs resize, file, setfacl)', baseline: '-', value: first.allocMs ?? NaN, baselineValue: NaN, unit: 'ms' },
    ];
  } finally {
    await host.close();
    remove();
  }
}

// Run on its own: `node --import tsx test/bench/shared-memory.ts` prints the rows.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { connectEngine } = await import('../../src/engine/docker.js');
  const { createLogger } = await import('../../src/log.js');
  const docker = await connectEngine();
  const rows = await sharedMemoryBench(docker, createLogger('bench', 'warn'), `bench-${process.pid}`, Number(process.env.BENCH_ROUNDS ?? 10));
  for (const r of rows) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit} (baseline ${r.baseline}: ${r.baselineValue.toFixed(2)} ${r.unit})${r.target ? ` target ${r.target}: ${r.met ? 'met' : 'NOT met'}` : ''}`);
  const { removeByLabel } = await import('../../src/engine/cleanup.js');
  await removeByLabel(docker, `bench-${process.pid}-shm`);
}
