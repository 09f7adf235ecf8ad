// `npm run build:cli`: bundles the compiled CLI (dist/cli/, from tsc) with esbuild into
// dist/cli-bundle/, which bin/logomesh.js loads (docs/performance.md#the-cli):
// - entry.js and its chunks: every command, ES modules split at the commands' lazy imports;
// - run.cjs: `logomesh run` alone, CommonJS, so that bin/logomesh.js can load it with V8's
//   code cache (src/code-cache.ts). dockerode is bundled into it (its require() from
//   node_modules took ~35 ms of a run), less the parts LogoMesh never calls: BuildKit
//   (grpc, protobufjs) and SSH (ssh2), which stay in node_modules and load on a first
//   call, as src/engine/deferred-modules.ts does for the unbundled dockerode;
// - docker-modem, in both, with the edits of src/cli/bundle-patches.mjs.
import process from 'node:process';
import { build } from 'esbuild';
import { patchDockerModem } from './bundle-patches.mjs';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // pino starts its pretty printer (a TTY's stderr) in a worker from its own files.
  external: ['pino', 'pino-pretty', 'thread-stream'],
  plugins: [patchDockerModem],
};

await build({
  ...common,
  entryPoints: ['dist/cli/entry.js'],
  splitting: true,
  format: 'esm',
  outdir: 'dist/cli-bundle',
  banner: { js: "import { createRequire as __lmRequire } from 'node:module'; const require = __lmRequire(import.meta.url);" },
});

/** Where each deferred part is found at run time, from the bundle's require (node_modules above it). */
const DEFERRED = {
  'dockerode/lib/session.js': "require.resolve('dockerode/lib/session.js')",
  'dockerode/lib/buildkit.js': "require.resolve('dockerode/lib/buildkit.js')",
  'docker-modem/lib/ssh.js': "require('node:module').createRequire(require.resolve('dockerode/package.json')).resolve('docker-modem/lib/ssh.js')",
};
const PARTS = { './session': 'dockerode/lib/session.js', './buildkit': 'dockerode/lib/buildkit.js', './ssh': 'docker-modem/lib/ssh.js' };

/**
 * session and ssh export one function each, required when dockerode loads: a stand-in loads
 * the real module on its first call. buildkit is required inside the one function that uses
 * it: required from node_modules then.
 */
const deferParts = {
  name: 'defer-unused-dockerode-parts',
  setup(b) {
    b.onResolve({ filter: /^\.\/(session|buildkit|ssh)$/ }, (args) => {
      const part = PARTS[args.path];
      if (!args.importer.includes(`/node_modules/${part.split('/')[0]}/lib/`)) return undefined;
      return { path: part, namespace: 'lm-deferred' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lm-deferred' }, (args) => ({
      loader: 'js',
      contents: args.path.endsWith('buildkit.js')
        ? `module.exports = require(${DEFERRED[args.path]});\n`
        : `let real;\nmodule.exports = function (...args) {\n  real ??= require(${DEFERRED[args.path]});\n  return real.apply(this, args);\n};\n`,
    }));
  },
};

const run = await build({
  ...common,
  entryPoints: ['dist/cli/run-bundle.js'],
  format: 'cjs',
  outfile: 'dist/cli-bundle/run.cjs',
  // pino is bundled too; its transport (the pretty printer on a TTY) runs in a worker from
  // thread-stream's and pino-pretty's own files, which stay in node_modules. Only resolved
  // at run time, by the stand-ins: dockerode's deferred parts.
  external: ['pino-pretty', 'dockerode/lib/session.js', 'dockerode/lib/buildkit.js', 'dockerode/package.json'],
  metafile: process.env.LOGOMESH_BUILD_META !== undefined,
  // The modules' import.meta.url (paths.ts finds the package from it) is the bundle's.
  define: { 'import.meta.url': '__lmModuleUrl' },
  // pino and thread-stream find their worker files by __dirname, which is the bundle's here:
  // their bundler hook names them in node_modules (looked up only when a transport starts).
  banner: {
    js: [
      "const __lmModuleUrl = require('node:url').pathToFileURL(__filename).href;",
      "globalThis.__bundlerPathsOverrides = { get 'pino-worker'() { return require.resolve('pino/lib/worker.js'); }, get 'pino/file'() { return require.resolve('pino/file.js'); }, get 'thread-stream-worker'() { return require.resolve('thread-stream/lib/worker.js'); } };",
    ].join('\n'),
  },
  plugins: [deferParts, patchDockerModem],
});
if (run.metafile) (await import('node:fs')).writeFileSync(process.env.LOGOMESH_BUILD_META, JSON.stringify(run.metafile));
