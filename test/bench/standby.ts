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

/**
 * Restart to ready with a warm standby (issue 20 item 2): `restart` by hand, and a crash (the
 * container killed; from the engine's confirmation of the kill to the plugin ready again on
 * its standby), each beside a restart without a standby (stop, then start) of the same plugin.
 * `id` must keep a standby (the controller's `standby` option).
 */
export async function standbyBench(host: Controller, docker: Docker, id: string, rounds: number): Promise<Row[]> {
  const waiting = () => host.status(id).standby?.state === 'waiting';
  const byHand: number[] = [];
  const crash: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await until(`a standby of ${id}`, waiting);
    byHand.push(await timedMs(() => host.restart(id)));
    await until(`a standby of ${id}`, waiting);
    const before = host.status(id).containerId!;
    const ready = new Promise<number>((resolve) => {
      const on = (readyId: string) => {
        if (readyId !== id) return;
        host.hub.off('ready', on);
        resolve(performance.now());
      };
      host.hub.on('ready', on);
    });
    await docker.getContainer(before).kill({ signal: 'SIGKILL' });
    const killed = performance.now();
    crash.push((await ready) - killed);
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
  const target = '<= 50 ms p50';
  const byHandP50 = pct(byHand, 50);
  const crashP50 = pct(crash, 50);
  return [
    { section: 'standby', name: `restart to ready with a standby: \`restart ${id}\` p50`, subject: '', baseline: 'stop + start, no standby', value: byHandP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: byHandP50 <= 50 },
    { section: 'standby', name: `crash to ready with a standby: ${id} killed, p50 (from the kill confirmed to ready)`, subject: '', baseline: 'stop + start, no standby', value: crashP50, baselineValue: pct(plain, 50), unit: 'ms', target, met: crashP50 <= 50 },
  ];
}
