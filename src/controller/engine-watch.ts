import { errorText } from '../engine/docker.js';
import type { Logger } from '../log.js';
import type { EngineStatus } from './types.js';

/**
 * Whether the backend (the Docker engine, or the Kubernetes API server) answers. Pinged every `everyMs` while it does; while it does
 * not, that is said once, pings back off (up to 15 s apart) and plugin restarts wait for
 * it. When it answers again, `onBack` runs; the containers it lost are found by their
 * exits and restarted (with the daemon's live-restore they never stop).
 */
export class EngineWatch {
  private state: EngineStatus = { up: true, since: Date.now() };
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly backend: { ping(): Promise<unknown>; readonly what: string },
    private readonly log: Logger,
    private readonly everyMs: number,
    private readonly onBack: () => void,
  ) {
    this.next(everyMs);
  }

  get up(): boolean {
    return this.state.up;
  }

  status(): EngineStatus {
    return { ...this.state };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private next(delay: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.tick(delay), delay);
    this.timer.unref();
  }

  private async tick(delay: number): Promise<void> {
    try {
      await this.backend.ping();
      if (!this.state.up) {
        this.log.info({ downMs: Date.now() - this.state.since }, `${this.backend.what} answers again`);
        this.state = { up: true, since: Date.now() };
        this.onBack();
      }
      delay = this.everyMs;
    } catch (err) {
      const reason = errorText(err);
      if (this.state.up) {
        this.state = { up: false, since: Date.now(), lastError: reason };
        this.log.error({ reason }, `LM_ENGINE_UNAVAILABLE: ${this.backend.what} does not answer (${reason}); retrying with backoff, plugin restarts wait for it`);
      }
      delay = Math.min(delay * 2, 15_000);
    }
    this.next(delay);
  }
}
