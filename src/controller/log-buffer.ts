import { Writable } from 'node:stream';

import type { LogLine } from './types.js';

/**
 * The last lines a plugin wrote, for `logs`, start-failure messages and `ps`; followers get
 * new lines as they come. Bounded: a chatty plugin cannot grow the controller's memory.
 */
export class LogBuffer {
  private readonly lines: LogLine[] = [];
  private readonly followers = new Set<(line: LogLine) => void>();
  private partial = { stdout: '', stderr: '' };

  constructor(private readonly max = 1000) {}

  writable(stream: 'stdout' | 'stderr'): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.push(stream, chunk.toString('utf8'));
        done();
      },
    });
  }

  private push(stream: 'stdout' | 'stderr', text: string): void {
    const parts = (this.partial[stream] + text).split('\n');
    this.partial[stream] = parts.pop() ?? '';
    // One over-long line is cut, so the buffer's bound is in bytes as well as lines.
    if (this.partial[stream].length > 64 * 1024) {
      parts.push(this.partial[stream]);
      this.partial[stream] = '';
    }
    for (const p of parts) {
      const line = { time: Date.now(), stream, text: p.slice(0, 16 * 1024) };
      this.lines.push(line);
      if (this.lines.length > this.max) this.lines.shift();
      for (const f of this.followers) f(line);
    }
  }

  tail(n = 50): LogLine[] {
    return n > 0 ? this.lines.slice(-n) : [];
  }

  follow(fn: (line: LogLine) => void): () => void {
    this.followers.add(fn);
    return () => this.followers.delete(fn);
  }
}
