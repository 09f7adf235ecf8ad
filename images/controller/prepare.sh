#!/usr/bin/env bash
# Puts on the host what the controller image's build copies from the repository and cannot
# fetch itself (containers cannot verify the npm registry's certificate here): the compiled
# node_modules from `npm install`, and the Node.js binary of the node runtime, which it
# fetches with `npm pack` into node_modules/.cache/logomesh/ if it is not there yet. Then
# makes sure the compose home is on a shared mount (share-home.sh; compose.yaml binds it rshared).
# Idempotent and quick when everything is in place. Run from anywhere:
#   bash images/controller/prepare.sh && docker compose up -d --build
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -d node_modules/typescript ] || [ ! -d node_modules/tsx ]; then
  echo "logomesh: node_modules is missing or has no dev dependencies; run 'npm install' first" >&2
  exit 1
fi
# The node runtime's own fetch step: same version, same integrity check, same cache path.
node --import tsx --input-type=module -e "
const { node } = await import('./src/runtimes/node.ts');
const { createLogger } = await import('./src/log.ts');
for (const image of node.images) await image.prepare?.(createLogger('prepare', process.env.LOGOMESH_LOG_LEVEL ?? 'info'));
for (const image of node.images) for (const file of Object.values(image.extra ?? {})) console.log('ready: ' + file);
"
bash images/controller/share-home.sh
