import type { ConsoleHost } from './host.js';
import { CallWindow } from './graph.js';
import { readGrid } from './grid.js';
import { History } from './history.js';

/**
 * What the console keeps between requests: the history of every plugin's usage and the
 * window of call statistics, both bounded, fed by one tick that also pushes the grid (as one
 * JSON text, serialised once per tick whatever the number of open pages) to the live streams.
 */
export class ConsoleState {
  readonly history: History;
  readonly calls = new CallWindow();
  private readonly listeners = new Set<(msg: string) => void>();
  private timer?: NodeJS.Timeout;
  private last = '';
  /** The last tick's cost, ms: shown on the page, and what docs/console.md reports. */
  tickMs = 0;

  constructor(
    private readonly host: ConsoleHost,
    private readonly everyMs: number,
    historyTicks: number,
  ) {
    this.history = new History(historyTicks);
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  /** One tick: read the grid, record history and call stats, and push the grid to every stream. */
  tick(now = Date.now()): void {
    const t0 = performance.now();
    const g = readGrid(this.host, now);
    this.history.push(now, g.samples, g.rows.map((r) => r.id));
    this.calls.push(now, this.host.metrics.callSnapshot());
    this.last = JSON.stringify({ time: g.time, rows: g.rows, tickMs: Math.round(this.tickMs * 100) / 100, ...(g.monitor ? { monitor: g.monitor } : {}) });
    this.tickMs = performance.now() - t0;
    for (const l of this.listeners) l(this.last);
  }

  gridMessage(): string {
    return this.last;
  }

  onTick(fn: (msg: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
