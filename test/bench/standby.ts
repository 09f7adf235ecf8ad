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
 * Restart to ready with a warm standby (issue 20 item 2): `restart` by hand, and a crash (the
 * container killed; from the moment the kill is sent to the engine to the plugin ready
 * again on its standby), each beside a restart without a standby (stop, then start) of the same plugin.
 * `id` must keep a standby (the controller's `standby` option).
 */
export async function standbyBench(host: Controller, docker: Docker, id: string, rounds: number): Promise<Row[]> {
  const waiting = () => host.status(id).standby?.state === 'waiting';
  const byHand: number[] = [];
  const crash: number[] = [];
  const kills: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await until(`a standby of ${id}`, waiting);
    // From the call to its return: the switch emits the hub's ready inside the call (Standbys.take).
    byHand.push(nonNegative(await timedMs(() => host.restart(id)), 'restart'));
    await until(`a standby of ${id}`, waiting);
    const before = host.status(id).containerId!;
    // Timed from the moment the kill is sent: the controller can switch the standby in on
    // cgwatch's notice of the exit before the engine's answer to the kill request comes back,
    // so timing from that answer read -2 ms in two full runs. The listener and the start time
    // are taken in the same turn, so the ready it sees comes after the start.
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
    const sent = performance.now();
    await docker.getContainer(before).kill({ signal: 'SIGKILL' });
    const answered = performance.now();
    await ready;
    crash.push(nonNegative(readyAt - sent, 'crash to ready'));
    kills.push(answered - sent);
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
  process.stderr.write(`standby: crash to ready from the kill sent, ${crash.map((x) => x.toFixed(1)).join(', ')} ms; the engine answered the kill request after ${kills.map((x) => x.toFixed(1)).join(', ')} ms\n`);
  const target = '<= 50 ms p50';
  const byHandP50 = pct(byHand, 50);
  const crashP50 = pct(crash, 50);
  return [
    { section: 'standby', name: `restart to ready with a standby: \`restart ${id}\` p50`, subject: '', baseline: 'stop + start, no standby', value: byHandP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: byHandP50 <= 50 },
    { section: 'standby', name: `crash to ready with a standby: ${id} killed, p50 (from the kill sent to ready)`, subject: '', baseline: 'stop + start, no standby', value: crashP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: crashP50 <= 50 },
  ];
}
