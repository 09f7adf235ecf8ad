import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Workload } from '../../src/controller/backend.js';
import type { ControllerContext } from '../../src/controller/context.js';
import { beginStop, notExited } from '../../src/controller/graceful-stop.js';
import type { Managed } from '../../src/controller/managed.js';

/** A controller context with only what beginStop uses: a hub that takes the shutdown message, and a log whose lines are kept. */
function context(connected: boolean) {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as { level: number; msg: string }) });
  const hub = { requestShutdown: () => true, connected: () => connected };
  return { cx: { log, hub } as unknown as ControllerContext, lines };
}

/** A running plugin whose container never reports its exit (an engine that is late, or a plugin that stays). */
function running(): Managed {
  const workload = { wait: () => new Promise<never>(() => {}) } as unknown as Workload;
  return { loaded: { manifest: { id: 'p' } }, state: 'ready', container: workload, retries: 2 } as unknown as Managed;
}

describe('the shutdown message and its grace period (src/controller/graceful-stop.ts)', () => {
  it('a plugin that keeps its hub connection past the grace period is named as not exiting (warn)', async () => {
    const { cx, lines } = context(true);
    const m = running();
    expect(await beginStop(cx, () => {}, m, 20, 'sending SIGTERM')).toBe(m.container);
    expect(m.state).toBe('stopping');
    expect(m.retries).toBe(0);
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: 'plugin did not exit within 20 ms of the shutdown message; sending SIGTERM' })]);
  });

  it('a plugin that closed its connection is not blamed when the engine has not yet reported its exit (info)', async () => {
    const { cx, lines } = context(false);
    await beginStop(cx, () => {}, running(), 20, 'sending SIGTERM');
    expect(lines).toEqual([
      expect.objectContaining({ level: 30, msg: 'plugin closed its hub connection after the shutdown message, but the engine had not reported its exit within 20 ms; sending SIGTERM' }),
    ]);
  });

  it('a replaced container is named with its calls left, and blamed only while its connection is open', () => {
    const open = context(true);
    notExited(open.cx, { plugin: 'p', calls: 2 }, 20, 'stopping the replaced container', true);
    expect(open.lines).toEqual([expect.objectContaining({ level: 40, plugin: 'p', calls: 2, msg: 'plugin did not exit within 20 ms of the shutdown message; stopping the replaced container' })]);
    const closed = context(true);
    notExited(closed.cx, { plugin: 'p', calls: 0 }, 20, 'stopping the replaced container', false);
    expect(closed.lines).toEqual([expect.objectContaining({ level: 30, plugin: 'p', msg: expect.stringContaining('closed its hub connection') })]);
  });
});
