/** One plugin's numbers at one tick. */
export interface Sample {
  readonly cpu: number;
  /** Bytes. */
  readonly memory: number;
  readonly pids: number;
}

/** A plugin's series as the page's charts take them: times in seconds, NaN where it was not running. */
export interface Series {
  readonly t: number[];
  readonly cpu: (number | null)[];
  readonly memoryMB: (number | null)[];
  readonly pids: (number | null)[];
}

/**
 * The last `capacity` ticks (at one a second, 3600 is an hour) of every plugin's CPU,
 * memory and processes, in fixed typed arrays: one ring of times shared by all plugins and
 * three float rings per plugin, so memory is bounded by capacity x plugins x 12 bytes
 * (200 plugins: 8.6 MB) and a tick allocates nothing once a plugin is known.
 */
export class History {
  private readonly times: Float64Array;
  private readonly rings = new Map<string, { cpu: Float32Array; mem: Float32Array; pids: Float32Array }>();
  private next = 0;
  private filled = 0;

  constructor(readonly capacity = 3600) {
    this.times = new Float64Array(capacity);
  }

  /** Record one tick: `samples` holds the running plugins; `known` every loaded one (the others are forgotten). */
  push(time: number, samples: ReadonlyMap<string, Sample>, known: Iterable<string>): void {
    const i = this.next;
    this.times[i] = time;
    const keep = new Set(known);
    for (const id of this.rings.keys()) if (!keep.has(id)) this.rings.delete(id);
    for (const id of keep) {
      let r = this.rings.get(id);
      if (!r) {
        r = { cpu: new Float32Array(this.capacity).fill(NaN), mem: new Float32Array(this.capacity).fill(NaN), pids: new Float32Array(this.capacity).fill(NaN) };
        this.rings.set(id, r);
      }
      const s = samples.get(id);
      r.cpu[i] = s ? s.cpu : NaN;
      r.mem[i] = s ? s.memory / 1048576 : NaN;
      r.pids[i] = s ? s.pids : NaN;
    }
    this.next = (i + 1) % this.capacity;
    this.filled = Math.min(this.filled + 1, this.capacity);
  }

  /** A plugin's series, oldest first, the last `seconds` of them at most; undefined for an unknown plugin. */
  series(id: string, seconds = this.capacity): Series | undefined {
    const r = this.rings.get(id);
    if (!r) return undefined;
    const n = Math.min(this.filled, Math.max(1, Math.floor(seconds)));
    const out: Series = { t: [], cpu: [], memoryMB: [], pids: [] };
    const nan = (v: number) => (Number.isNaN(v) ? null : Math.round(v * 100) / 100);
    for (let k = n; k > 0; k--) {
      const i = (this.next - k + this.capacity) % this.capacity;
      out.t.push(this.times[i]! / 1000);
      out.cpu.push(nan(r.cpu[i]!));
      out.memoryMB.push(nan(r.mem[i]!));
      out.pids.push(nan(r.pids[i]!));
    }
    return out;
  }

  /** Ticks kept now (at most capacity). */
  get length(): number {
    return this.filled;
  }

  get plugins(): number {
    return this.rings.size;
  }
}
