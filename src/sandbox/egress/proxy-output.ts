import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import type { Docker } from '../../engine/docker.js';
import type { Logger } from '../../log.js';

/**
 * Following one proxy container's output: stdout carries one JSON object a line (decisions and
 * events), stderr is for the operator's log. Lines carry the engine's timestamps, so that after
 * the engine restarts (the stream ends, the proxy keeps running under live-restore) following
 * starts again from the last line seen, and no decision is lost or counted twice.
 */
export interface ProxyOutputHandlers {
  readonly line: (obj: Record<string, unknown>) => void;
  /** The stream ended: the proxy exited, or the engine went away. */
  readonly ended: () => void;
}

/** A Docker log timestamp (RFC 3339, up to nanoseconds) as nanoseconds since the epoch. */
export function timestampNs(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** The engine's `since` for a resumed follow: a little before the last line, duplicates are skipped. */
export function sinceSeconds(lastNs: bigint): number {
  return Math.max(0, Number(lastNs / 1_000_000_000n) - 1);
}

/**
 * At most `lines` log lines per `windowMs`; the rest are counted, and the count is reported
 * with the first line of a later window. A proxy in trouble may write a great deal to
 * stderr: the operator's log gets a bounded share.
 */
export class LineBudget {
  private start = -Infinity;
  private used = 0;
  private dropped = 0;

  constructor(
    readonly lines = 10,
    readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether this line may be logged, and how many were dropped since the last one that was. */
  take(): { log: boolean; dropped: number } {
    const t = this.now();
    let dropped = 0;
    if (t - this.start >= this.windowMs) {
      dropped = this.dropped;
      this.start = t;
      this.used = 0;
      this.dropped = 0;
    }
    if (this.used < this.lines) {
      this.used++;
      return { log: true, dropped };
    }
    this.dropped++;
    return { log: false, dropped };
  }
}

export class ProxyOutput {
  /** The timestamp of the last line seen, per stream (the engine timestamps each stream's lines on its own). */
  private readonly lastNs = { out: 0n, err: 0n };
  private readonly stderrBudget = new LineBudget();
  private current?: NodeJS.ReadableStream;

  constructor(
    private readonly docker: Docker,
    private readonly container: Dockerode.Container,
    private readonly log: Logger,
    private readonly handlers: ProxyOutputHandlers,
  ) {}

  /** Start (or resume) following. Resolves once the stream is open. */
  async follow(): Promise<void> {
    const seen = [this.lastNs.out, this.lastNs.err].filter((ns) => ns > 0n);
    const since = seen.length ? sinceSeconds(seen.reduce((a, b) => (a < b ? a : b))) : 0;
    const stream = (await this.container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since })) as unknown as NodeJS.ReadableStream;
    this.current = stream;
    const out = new PassThrough();
    const err = new PassThrough();
    this.docker.modem.demuxStream(stream, out, err);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      out.end();
      err.end();
      this.handlers.ended();
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
    this.lines(out, 'out', (text) => {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      this.handlers.line(obj);
    });
    this.lines(err, 'err', (text) => this.stderr(text));
  }

  /**
   * End the current follow as the engine going away does (the stream just ends). For tests
   * of resuming, which cannot restart a shared engine.
   */
  interrupt(): void {
    (this.current as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined)?.destroy?.();
  }

  /** Split a stream into lines, drop the timestamp and every line already seen. */
  private lines(s: PassThrough, which: 'out' | 'err', each: (text: string) => void): void {
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const sp = line.indexOf(' ');
        const ns = sp > 0 ? timestampNs(line.slice(0, sp)) : undefined;
        if (ns === undefined) continue;
        if (ns <= this.lastNs[which]) continue;
        this.lastNs[which] = ns;
        each(line.slice(sp + 1));
      }
    });
  }

  private stderr(text: string): void {
    const { log, dropped } = this.stderrBudget.take();
    if (dropped) this.log.warn({ dropped }, `egress proxy: ${dropped} more lines on stderr were not logged`);
    if (log) this.log.warn({ text: text.trim() }, 'egress proxy');
  }
}
