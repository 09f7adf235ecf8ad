import type { Controller } from '../../src/controller/controller.js';
import type { Docker } from '../../src/engine/docker.js';
import { pct, timedMs, type Row } from './stats.js';

/** Wait for a condition of the controller (generously): no timing depends on it. */
async function until(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A duration that cannot be negative: one that is says the timing is wrong, not the plugin fast. */
function nonNegative(ms: number, what: string): number {
  if (!(ms >= 0)) throw new Error(`${what} timed at ${ms} ms: the timing starts after the event it ends on`);
  return ms;
}

/**
 * A crash: SIGKILL sent straight to the container's first process, as the kernel would send
 * it. A kill request through the engine is no part of a crash: on this host it took 74-212 ms
 * to come back (dockerd, containerd, the shim and runc on the way to the signal, and dockerd
 * answering only once it has handled the exit), which timed from the request would set the row.
 * Without the right to signal it (not root), the engine is asked.
 */
async function crashContainer(docker: Docker, containerId: string, pid: number): Promise<'SIGKILL' | 'kill request'> {
  try {
    process.kill(pid, 'SIGKILL');
    return 'SIGKILL';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    await docker.getContainer(containerId).kill({ signal: 'SIGKILL' });
    return 'kill request';
  }
}

/**
 * Restart to ready with a warm standby (issue 20 item 2): `restart` by hand, and a crash (the
 * container's process killed; from the moment the SIGKILL is sent to the plugin ready again
 * on its standby), each beside a restart without a standby (stop, then start) of the same plugin.
 * `id` must keep a standby (the controller's `standby` option).
 */
export async function standbyBench(host: Controller, docker: Docker, id: string, rounds: number): Promise<Row[]> {
  const waiting = () => host.status(id).standby?.state === 'waiting';
  const byHand: number[] = [];
  const crash: number[] = [];
  const plain: number[] = [];
  const exits: number[] = [];
  let how = 'SIGKILL';
  for (let i = 0; i < rounds; i++) {
    await until(`a standby of ${id}`, waiting);
    // From the call to its return: the switch emits the hub's ready inside the call (Standbys.take).
    byHand.push(nonNegative(await timedMs(() => host.restart(id)), 'restart'));
    await until(`a standby of ${id}`, waiting);
    const before = host.status(id).containerId!;
    const pid = (await docker.getContainer(before).inspect()).State.Pid;
    // Timed from the moment the kill is sent: timed from the engine's answer to a kill request,
    // the row read -2 ms in two full runs (the controller switched the standby in before that
    // answer came back). The listener and the start are taken in the same turn, so the ready
    // it sees comes after the start.
    let readyAt = NaN;
    const ready = new Promise<void>((resolve) => {
      const on = (readyId: string) => {
        if (readyId !== id) return;
        readyAt = performance.now();
        host.hub.off('ready', on);
        resolve();
      };
      host.hub.on('ready', on);
    });
    // The engine's report of the exit, asked for as the controller asks for it: for stderr only.
    const reported = docker.getContainer(before).wait().then(() => performance.now());
    const sent = performance.now();
    how = await crashContainer(docker, before, pid);
    await ready;
    crash.push(nonNegative(readyAt - sent, 'crash to ready'));
    exits.push((await reported) - sent);
    await until(`${id} ready after the crash`, () => host.status(id).state === 'ready' && host.status(id).containerId !== before);
  }
  // The same plugin without its standby: what a restart costs otherwise.
  for (let i = 0; i < rounds; i++) {
    plain.push(
      await timedMs(async () => {
        await host.stop(id);
        await host.start(id);
      }),
    );
  }
  const list = (xs: number[]) => `${xs.map((x) => x.toFixed(1)).join(', ')} ms (p50 ${pct(xs, 50).toFixed(1)}, p99 ${pct(xs, 99).toFixed(1)})`;
  process.stderr.write(`standby: restart to ready ${list(byHand)}; crash to ready from the ${how} sent ${list(crash)}; the engine's wait for the exit answered this process after ${list(exits)}\n`);
  const target = '<= 50 ms p50';
  const byHandP50 = pct(byHand, 50);
  const crashP50 = pct(crash, 50);
  return [
    { section: 'standby', name: `restart to ready with a standby: \`restart ${id}\` p50`, subject: '', baseline: 'stop + start, no standby', value: byHandP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: byHandP50 <= 50 },
    { section: 'standby', name: `crash to ready with a standby: ${id} killed, p50 (from the ${how} sent to ready)`, subject: '', baseline: 'stop + start, no standby', value: crashP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: crashP50 <= 50 },
  ];
}
