/**
 * `npm run bench`: what LogoMesh costs, each figure beside a baseline measured in the same
 * run (the machines are noisy: read the ratios), and each target of the product's
 * requirements named, met or missed. Results go to stdout, docs/benchmarks.md and
 * docs/benchmarks.json.
 *
 *   BENCH_ROUNDS   rounds per measurement (default 10)
 *   BENCH_ONLY     a comma list of sections to run (latency,throughput,start,memory come
 *                  together as `controller`; standby, cli, run, shm, soak, scale, monitor); default all
 *   BENCH_SCALE    plugins in the scale rows (default 200; 0 leaves them out)
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { connectEngine, type Docker } from '../../src/engine/docker.js';
import { ensureRuntimeImage } from '../../src/images/build.js';
import { Controller } from '../../src/controller/controller.js';
import { pluginFolders } from '../../src/manifest/folders.js';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { python } from '../../src/runtimes/python.js';
import { runPlugin } from '../../src/sandbox/run-plugin.js';
import { benchHome } from './bench-home.js';
import { cliBench } from './cli.js';
import { controllerBench } from './controller.js';
import { monitorBench } from './monitor.js';
import { NOTES, WHY } from './report-text.js';
import { openRawEcho } from './raw-echo.js';
import { sharedMemoryBench } from './shared-memory.js';
import { docsFile, writeJson, writeMarkdown } from './report.js';
import { scaleBench } from './scale.js';
import { soakBench } from './soak.js';
import { standbyBench } from './standby.js';
import { pct, timedMs, type Row } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HELLO = path.join(REPO, 'test', 'fixtures', 'plugins', 'hello-python');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'controller,standby,cli,run,shm,soak,scale,monitor').split(',').map((s) => s.trim()));
const instance = `bench-${process.pid}`;

function timedSync(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function mustSucceed(r: ReturnType<typeof spawnSync>, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr?.toString()}`);
}

/** `logomesh run` (the installed command) against a bare `docker run` of the same image, mount and command. */
async function runCommandBench(docker: Docker): Promise<Row[]> {
  await ensureRuntimeImage(docker, python, { log: silentLogger, progress: process.stderr });
  const env = { ...process.env, LOGOMESH_INSTANCE: instance, LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_POLICY: '' };
  const cli: number[] = [];
  const bare: number[] = [];
  const bareArgs = ['run', '--rm', '--network', 'none', '-v', `${HELLO}:/plugin:ro`, python.tag, ...python.command('main.py')];
  for (let i = 0; i < ROUNDS; i++) {
    cli.push(timedSync(() => mustSucceed(spawnSync(process.execPath, [path.join(REPO, 'bin/logomesh.js'), 'run', HELLO], { env }), 'logomesh run')));
    bare.push(timedSync(() => mustSucceed(spawnSync('docker', bareArgs), 'docker run')));
  }
  const loaded = loadManifest(HELLO);
  const sink = () => new PassThrough().resume();
  const lib: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    lib.push(await timedMs(() => runPlugin({ docker, loaded, instance, stdout: sink(), stderr: sink(), log: silentLogger })));
    raw.push(
      await timedMs(async () => {
        const c = await docker.createContainer({
          Image: python.tag,
          Cmd: python.command('main.py'),
          Labels: { 'io.logomesh.owner': 'logomesh', 'io.logomesh.instance': instance },
          HostConfig: { NetworkMode: 'none', Binds: [`${HELLO}:/plugin:ro`] },
        });
        const s = await c.attach({ stream: true, stdout: true, stderr: true });
        s.resume();
        await c.start();
        await c.wait();
        await c.remove({ force: true });
      }),
    );
  }
  const value = pct(cli, 50);
  const baselineValue = pct(bare, 50);
  return [
    { id: 'run.command', section: 'run', name: '`logomesh run` hello-python, the installed command', subject: '', baseline: '`docker run --rm`, same image, mount, command', value, baselineValue, unit: 'ms', target: '<= 1.5x `docker run --rm`', met: value <= 1.5 * baselineValue },
    { id: 'run.library', section: 'run', name: '`runPlugin()` hello-python, in process', subject: '', baseline: 'bare dockerode create/attach/start/wait/remove', value: pct(lib, 50), baselineValue: pct(raw, 50), unit: 'ms' },
  ];
}

/**
 * The latency rows against the raw echo's round trips, and the targets that compare rows with
 * each other. The throughput row brings its own baseline (windows of the raw echo taken in
 * turns with the hub's, test/bench/throughput.ts).
 */
function judge(rows: Row[], echo: { p50: number; p99: number }): Row[] {
  const hostP50 = (plugin: string) => rows.find((r) => r.id === `latency.host.${plugin}.p50`)?.value ?? NaN;
  return rows.map((r) => {
    if (r.section !== 'latency') return r;
    const withBase = { ...r, baselineValue: r.name.endsWith('p99') ? echo.p99 : echo.p50 };
    const m = /^latency\.p2p\.[^.]+\.([^.]+)\.p50$/.exec(r.id ?? '');
    if (!m) return withBase;
    const bound = 2 * hostP50(m[1]!);
    return { ...withBase, target: `<= 2x host -> ${m[1]} p50 (${Math.round(bound)} us)`, met: r.value <= bound };
  });
}

async function controllerSections(docker: Docker, log: Logger, rows: Row[]): Promise<void> {
  // The raw echo's round trips (the latency rows' baseline) are timed here, before the plugins
  // start, as before; its processes stay up for the throughput row's windows.
  const echo = await openRawEcho();
  const { home, remove } = benchHome('controller', instance);
  try {
    const us = await echo.roundTrips(ROUNDS * 200);
    // The hub's per-plugin rate limit (20000 messages/s) would cap the throughput row at the
    // limit, not at what the hub can do: it is raised here, and only here.
    const host = await Controller.create({ log, home, docker, progress: process.stderr, startTimeoutMs: 60_000, rateLimit: 1_000_000 });
    try {
      const folders = [...pluginFolders(path.join(REPO, 'manifests')), ...pluginFolders(path.join(REPO, 'test', 'fixtures', 'bench'))];
      host.load(folders.map((f) => loadManifest(f)));
      await host.startAll();
      if (ONLY.has('controller')) rows.push(...judge(await controllerBench(host, docker, ROUNDS, instance, echo), { p50: pct(us, 50), p99: pct(us, 99) }));
      if (ONLY.has('standby')) rows.push(...(await standbyBench(host, docker, 'standby-node', ROUNDS)));
      if (ONLY.has('cli')) rows.push(...(await cliBench(host, log, 'echo-node', 'echo', ROUNDS)));
    } finally {
      await host.close();
    }
  } finally {
    echo.close();
    remove();
  }
}

async function main(): Promise<void> {
  const docker = await connectEngine();
  const log = createLogger('bench', 'warn');
  const loadBefore = os.loadavg()[0]!;
  const rows: Row[] = [];
  if (ONLY.has('controller') || ONLY.has('standby') || ONLY.has('cli')) await controllerSections(docker, log, rows);
  if (ONLY.has('run')) rows.push(...(await runCommandBench(docker)));
  if (ONLY.has('shm')) rows.push(...(await sharedMemoryBench(docker, log, instance, ROUNDS)));
  if (ONLY.has('soak')) rows.push(...(await soakBench(docker, log, instance)));
  if (ONLY.has('scale') && Number(process.env.BENCH_SCALE ?? 200) > 0) rows.push(...(await scaleBench(docker, log, instance)));
  await removeByLabel(docker, instance);
  // The resource monitor needs root (cgroup notifications, other users' /proc): skipped otherwise.
  if (ONLY.has('monitor')) {
    if (process.getuid?.() === 0) rows.push(...(await monitorBench(docker)));
    else process.stderr.write('resource monitor benchmark skipped: it needs root\n');
  }

  const version = await docker.version();
  const report = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Docker Engine ${version.Version} (API ${version.ApiVersion}, cgroup v1), Node ${process.version}`,
    load: { before: loadBefore, after: os.loadavg()[0]! },
    rounds: ROUNDS,
    rows: rows.map((r) => (r.met === false && r.id && WHY[r.id] ? { ...r, why: WHY[r.id] } : r.met === false && WHY[r.section] ? { ...r, why: WHY[r.section] } : r)),
  };
  writeJson(docsFile(REPO, 'benchmarks.json'), report);
  const text = writeMarkdown(docsFile(REPO, 'benchmarks.md'), report, NOTES);
  process.stdout.write(`${text}\n`);
}

await main();
