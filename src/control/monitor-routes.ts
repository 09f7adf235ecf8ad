import type { IncomingMessage } from 'node:http';
import type { Controller } from '../controller/controller.js';
import { LogoMeshError } from '../errors.js';
import type { LimitChange } from '../monitor/index.js';

/**
 * The control socket's resource monitoring requests (see server.ts):
 *
 *   GET  /v1/stats                         -> StatsRow[] (logomesh stats)
 *   GET  /v1/plugins/:id/usage             -> ResourceUsage
 *   POST /v1/plugins/:id/limits {memoryMB?, cpuPercent?, processes?, by?}
 *                                          -> {plugin, changed: ChangedLimit[]}; audited as
 *                                             `operator`, with `by` (who the CLI says ran it)
 *
 * Returns the answer, or undefined when the request is not one of these.
 */
export async function monitorRoute(host: Controller, req: IncomingMessage, parts: readonly string[], body: () => Promise<unknown>): Promise<unknown> {
  const [, what, id, action] = parts;
  if (req.method === 'GET' && what === 'stats' && !id) return host.stats();
  if (what !== 'plugins' || !id) return undefined;
  if (req.method === 'GET' && action === 'usage') return host.usage(id);
  if (req.method === 'POST' && action === 'limits') {
    const { by, ...change } = (await body()) as LimitChange & { by?: unknown };
    const who = typeof by === 'string' && /^[\x20-\x7e]{1,128}$/.test(by) ? `operator (${by})` : 'operator';
    if (Object.keys(change).length === 0) throw new LogoMeshError('LM_USAGE', "limits needs at least one of 'memoryMB', 'cpuPercent', 'processes'", {});
    return { plugin: id, changed: await host.setLimits(id, change, who) };
  }
  return undefined;
}
