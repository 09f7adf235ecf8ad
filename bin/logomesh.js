#!/usr/bin/env node
// The installed command. It loads the CLI as `npm run build` bundles it (dist/cli-bundle/:
// a few modules loaded on demand instead of about 150, which halves the start of a
// command), or the compiled modules (dist/cli/) where there is no bundle. `run` has a
// bundle of its own, run.cjs, with only what it needs, loaded with V8's code cache
// (dist/code-cache.js; docs/performance.md#the-cli).
import { existsSync } from 'node:fs';
import { fileURLToPath, URL } from 'node:url';

const argv = process.argv.slice(2);
const runBundle = fileURLToPath(new URL('../dist/cli-bundle/run.cjs', import.meta.url));
if (argv[0] === 'run' && existsSync(runBundle)) {
  const { loadCachedBundle } = await import('../dist/code-cache.js');
  process.exitCode = await loadCachedBundle(runBundle).runEntry(argv);
} else {
  const bundled = new URL('../dist/cli-bundle/entry.js', import.meta.url);
  await import(existsSync(bundled) ? bundled.href : '../dist/cli/entry.js');
}
