import { errorText } from '../../engine/docker.js';
import type { ControllerContext } from '../context.js';
import { notExited } from '../graceful-stop.js';
import { delay, type Launcher, type Supervision } from '../launcher.js';
import { isUp, type Managed } from '../managed.js';
import { DEFAULTS } from '../options.js';

/** How one replacement went, for `apply`'s report and docs/deploys.md's figures. */
export interface Replaced {
  /** From the start of the replacement to the handover (the new container said hello). */
  readonly readyMs: number;
  /** From the handover until the old container was gone. */
  readonly retireMs: number;
  /** Whether there was a running container to hand over from (else a plain start). */
  readonly handover: boolean;
}

/**
 * Replace a plugin's container with one of its new version without failing a call: the new
 * container starts beside the old one, on the plugin's other socket folder and egress
 * attachment (Managed.generation); the hub hands the plugin's calls over at its hello; the
 * old one gets the shutdown message, answers the calls it holds within the stop grace,
 * and is removed. If the new one does not get ready, the old one goes on serving and the
 * start's coded error is thrown. A plugin that was not running is simply started anew.
 */
export async function replacePlugin(cx: ControllerContext, launcher: Launcher, supervision: Supervision, old: Managed, next: Managed): Promise<Replaced> {
  const id = next.loaded.manifest.id;
  const t0 = Date.now();
  const handover = isUp(old) && old.container !== undefined && cx.hub.isReady(id);
  if (!handover) {
    supervision.stopTimers(old);
    await launcher.stop(old);
    cx.registry.replace(next);
    await launcher.start(next);
    return { readyMs: Date.now() - t0, retireMs: 0, handover: false };
  }
  next.generation = old.generation === 0 ? 1 : 0;
  cx.audit.record({ who: 'controller', action: 'replace', resource: id, result: 'starting', reason: `version ${next.loaded.manifest.version} beside the running ${old.loaded.manifest.version}` });
  try {
    await launcher.start(next, true);
  } catch (err) {
    cx.audit.record({ who: 'controller', action: 'replace', resource: id, result: 'failed', code: (err as { code?: string }).code ?? 'LM_ENGINE_ERROR', reason: `the running version keeps serving: ${(err as Error).message}`.slice(0, 512) });
    throw err;
  }
  // Handed over: the hub routes the plugin's calls to the new container since its hello.
  const readyMs = Date.now() - t0;
  cx.registry.replace(next);
  cx.persist();
  const t1 = Date.now();
  await retire(cx, launcher, supervision, old);
  const retireMs = Date.now() - t1;
  // A warm standby was made from the old version: the plugin gets one of the new.
  await launcher.renewStandby(next);
  cx.audit.record({ who: 'controller', action: 'replace', resource: id, result: 'ready', reason: `ready in ${readyMs} ms; the old container finished its calls and was removed in ${retireMs} ms` });
  return { readyMs, retireMs, handover: true };
}

/**
 * The old container after the handover: no new calls reach it. It is asked to shut down
 * (every SDK answers the calls in flight first), given the stop grace to exit, then
 * stopped and removed with its socket folder and network. Its exit is expected: not a
 * failure, no restart.
 */
async function retire(cx: ControllerContext, launcher: Launcher, supervision: Supervision, old: Managed): Promise<void> {
  const id = old.loaded.manifest.id;
  const grace = cx.opts.stopGraceMs ?? DEFAULTS.stopGraceMs;
  supervision.stopTimers(old);
  old.state = 'stopping';
  const container = old.container!;
  try {
    if (cx.hub.retire(id, grace)) {
      const exited = await Promise.race([container.wait().then(() => true, () => true), delay(grace).then(() => false)]);
      if (!exited) notExited(cx, { plugin: id, calls: cx.hub.retiringCalls(id) }, grace, 'stopping the replaced container', cx.hub.retiringConnected(id));
    }
    await container.stop(Math.ceil(grace / 1000));
  } catch (err) {
    cx.log.warn({ plugin: id, err: errorText(err) }, 'stopping the replaced container failed; it is removed');
  }
  await launcher.teardown(old, 'retiring');
  old.state = 'stopped';
}
