import path from 'node:path';
import { openIfPresent, pressure as parsePressure } from './cgroup-file.js';
import type { PressureResource } from './kernel-watches.js';
import { pressureCrossing, type PressureState } from './policies.js';
import type { Kill } from './throttle-check.js';
import type { PressureWatch } from './watch-arming.js';
import type { WatchState } from './watch-state.js';

/**
 * A PSI trigger fired (cgwatch's `psi.<resource>.<alert|kill>` event): read the pressure
 * file's avg10 for the report, kill, or alert once per crossing (pressureCrossing).
 */
export class PressureCheck {
  private readonly crossings = new Map<string, PressureState>();

  constructor(
    private readonly unifiedDir: string | undefined,
    private readonly state: WatchState,
    private readonly kill: Kill,
  ) {}

  onTrigger(name: string, watches: readonly PressureWatch[]): void {
    const [, resource, use] = name.split('.') as [string, PressureResource, 'alert' | 'kill'];
    const w = watches.find((p) => p.name === name);
    if (!w) return;
    const file = openIfPresent(path.join(this.unifiedDir ?? '', `${resource}.pressure`));
    const avg10 = file ? parsePressure(file.read()).some.avg10 : w.percent;
    file?.close();
    const detail = `${resource} pressure: some tasks stalled more than ${w.percent}% of a ${w.windowMs} ms window (avg10 ${avg10}%)`;
    if (use === 'kill') {
      this.kill('pressure', 'notification', avg10, w.percent, 'percent', detail);
      return;
    }
    const r = pressureCrossing(this.crossings.get(name) ?? {}, performance.now(), w.windowMs);
    this.crossings.set(name, r.state);
    if (r.fire) this.state.violation('pressure', 'alert', 'notification', avg10, w.percent, 'percent', detail);
  }
}
