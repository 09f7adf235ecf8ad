import { setTimeout as delay } from 'node:timers/promises';
import type { Workload } from './backend.js';
import type { ControllerContext } from './context.js';
import { isUp, type Managed } from './managed.js';

/**
 * The first part of a stop by hand, the same on every backend: the crash loop ends (the next
 * start begins with a clean slate), and a running plugin gets the hub's shutdown message and
 * `graceMs` to exit by itself (a wait that fails counts as the end). Returns the workload
 * left to stop, or undefined when there is none (the plugin is then stopped, or stays loaded).
 * `then` says what follows a plugin that did not exit in time, for the log.
 */
export async function beginStop(cx: ControllerContext, stopTimers: (m: Managed) => void, m: Managed, graceMs: number, then: string): Promise<Workload | undefined> {
  stopTimers(m);
  m.retries = 0;
  delete m.lastError;
  if (!m.container) {
    if (m.state !== 'loaded') m.state = 'stopped';
    return undefined;
  }
  const { id } = m.loaded.manifest;
  const wasRunning = isUp(m);
  m.state = 'stopping';
  const workload = m.container;
  if (wasRunning && cx.hub.requestShutdown(id, graceMs)) {
    const exited = await Promise.race([workload.wait().then(() => true, () => true), delay(graceMs).then(() => false)]);
    if (!exited) notExited(cx, { plugin: id }, graceMs, then, cx.hub.connected(id));
  }
  return workload;
}

/**
 * Say why a plugin (or a replaced plugin's old container) is stopped by force. One that closed
 * its hub connection has ended its session; when the engine has not reported its exit yet
 * (stopping 200 containers at once keeps the engine busy for seconds on two cores), that is
 * the engine being late, not the plugin, and the log must not blame the plugin for it.
 * `fields` name it in the log line (its id, and for a replaced container its calls left).
 */
export function notExited(cx: ControllerContext, fields: { plugin: string; calls?: number }, graceMs: number, then: string, stillConnected: boolean): void {
  if (stillConnected) {
    cx.log.warn(fields, `plugin did not exit within ${graceMs} ms of the shutdown message; ${then}`);
  } else {
    cx.log.info(fields, `plugin closed its hub connection after the shutdown message, but the engine had not reported its exit within ${graceMs} ms; ${then}`);
  }
}
