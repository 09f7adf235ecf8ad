// Source edits that `npm run build:cli` makes to docker-modem and dockerode as it bundles them into
// dist/cli-bundle/run.cjs (src/cli/build-bundles.mjs; docs/performance.md#the-cli). Each
// removes work that every `logomesh run` paid for something it never uses. An edit whose
// text is not found fails the build: a new docker-modem must be looked at again, not
// bundled without the edit unnoticed.
import { readFileSync } from 'node:fs';

/** [file in docker-modem/lib, [text, replacement]...]. */
const EDITS = {
  // http.js wraps both http and https and required https (with it tls and its crypto setup,
  // about 15 ms of a run) when it loaded; the engine is reached over https only with
  // DOCKER_HOST=tcp://... and DOCKER_TLS_VERIFY. The https wrapper is made on first use.
  'http.js': [
    ["var nativeHttps = require('https'),\n  nativeHttp", 'var nativeHttp'],
    ['https: nativeHttps,', "get https() { return require('https'); },"],
    ['for (var protocol in protocols) {', 'function wrap(protocol) {'],
    [
      'module.exports[protocol] = h;\n}',
      "return h;\n}\nmodule.exports.http = wrap('http');\nvar httpsWrapped;\nObject.defineProperty(module.exports, 'https', { enumerable: true, get: function () { return httpsWrapped || (httpsWrapped = wrap('https')); } });",
    ],
  ],
  // Every request formatted its whole options (the create request's 20 KB path among them)
  // with util.inspect for a debug line, printed only with DEBUG=modem.
  'modem.js': [["debug('Sending: %s', util.inspect(options, {", "if (debug.enabled) debug('Sending: %s', util.inspect(options, {"]],
};

/** The same for dockerode's own files. */
const DOCKERODE_EDITS = {
  // util.js loaded tar-fs (with its streams) and zlib for the one function that packs a build
  // context, which LogoMesh never calls (it sends its own tar): loaded on that call.
  'util.js': [
    ["var tar = require('tar-fs');\nvar zlib = require('zlib');\n", ''],
    ['tar.pack(', "require('tar-fs').pack("],
    ['zlib.createGzip()', "require('zlib').createGzip()"],
  ],
};

/** The esbuild plugin that applies EDITS and DOCKERODE_EDITS. */
export const patchDockerModem = {
  name: 'patch-docker-modem',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/](docker-modem[\\/]lib[\\/](http|modem)|dockerode[\\/]lib[\\/]util)\.js$/ }, (args) => {
      const [pkg, , name] = args.path.split(/[\\/]/).slice(-3);
      let text = readFileSync(args.path, 'utf8');
      for (const [from, to] of (pkg === 'dockerode' ? DOCKERODE_EDITS : EDITS)[name]) {
        if (!text.includes(from)) throw new Error(`${pkg}/lib/${name} changed: '${from.split('\n')[0]}' is not in it (src/cli/bundle-patches.mjs)`);
        text = text.split(from).join(to);
      }
      return { contents: text, loader: 'js' };
    });
  },
};
