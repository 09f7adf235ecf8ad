import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import type { Controller } from '../controller/controller.js';

type Route = (host: Controller, body: Record<string, unknown>) => Promise<unknown>;

/**
 * The control socket's deploy requests (docs/deploys.md): apply a folder, load one, unload
 * a plugin. A folder must be an absolute path as the controller sees it (the CLI resolves
 * it; under compose it is a path mounted into the controller's container).
 */
export function deployRoute(method: string | undefined, what: string | undefined, id: string | undefined, action: string | undefined): Route | undefined {
  if (method !== 'POST') return undefined;
  if (what === 'apply' && !id) {
    return (host, body) => host.apply(folder(body, 'apply'), { dryRun: body.dryRun === true, prune: body.prune === true });
  }
  if (what === 'load' && !id) return async (host, body) => ({ loaded: await host.loadAndStart(folder(body, 'load')) });
  if (what === 'plugins' && id && action === 'unload') {
    return async (host) => {
      await host.unload(id);
      return { unloaded: id };
    };
  }
  return undefined;
}

function folder(body: Record<string, unknown>, request: string): string {
  const dir = body.dir;
  if (typeof dir !== 'string' || !path.isAbsolute(dir)) {
    throw new LogoMeshError('LM_USAGE', `${request} needs 'dir': the absolute path of a folder of plugin folders (or of one plugin folder)`, { field: 'dir', expected: 'an absolute path', found: typeof dir === 'string' ? dir : typeof dir });
  }
  return dir;
}
