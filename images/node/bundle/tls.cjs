// What the SDK's bundle gets for require('tls') (esbuild --alias in images/node/Dockerfile):
// ws requires tls and https at load, but only a wss:// hub (LOGOMESH_HUB_URL) uses them, and
// loading them cost every idle plugin about 1.8 MiB (docs/performance.md#nodejs-plugins).
// Node's tls loads on the first connect; ws uses nothing else of it.
'use strict';

let tls;
module.exports = {
  connect: (...args) => (tls ??= process.getBuiltinModule('node:tls')).connect(...args),
};
