import Dockerode from 'dockerode';
import type { CliIo } from './io.js';
import { runEntry as run } from './run-main.js';

/**
 * The entry of `logomesh run`'s own bundle (dist/cli-bundle/run.cjs, src/cli/build-bundles.mjs),
 * which bin/logomesh.js loads with V8's code cache. Only the bundle imports this module:
 * dockerode is imported here so that it is bundled (and cached) with the rest, where the
 * library loads it from node_modules on first use (src/engine/docker.ts).
 */
export function runEntry(argv: string[], io?: CliIo): Promise<number> {
  return run(argv, io, new Dockerode());
}
