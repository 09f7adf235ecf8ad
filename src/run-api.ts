/**
 * The part of the library API (index.ts) that runs one plugin to completion, and nothing of
 * the controller: `logomesh run` imports this, so that its bundle (dist/cli-bundle/run.cjs)
 * loads neither the controller, the hub nor their metrics (prom-client), whose modules run
 * code when they load. Every name here is also exported, the same, by index.ts.
 */
export { loadManifest, type LoadedManifest } from './manifest/index.js';
export { runPlugin } from './sandbox/run-plugin.js';
export { EXIT_SIGSYS, followSeccompKills, type SeccompKills } from './sandbox/seccomp-kills.js';
export { removeRunOrphans } from './sandbox/orphans.js';
export { removeStagingLeftovers } from './sandbox/mount-staging.js';
export { runtimeImage } from './runtimes/index.js';
export { connectEngine, engineError, type Docker } from './engine/docker.js';
export { instanceId } from './labels.js';
export { resolvePolicy, type Policy } from './policy/policy.js';
export { enforcePolicy } from './policy/decisions.js';
export { signedContentOf, verifyPlugin, type SignedContent } from './signing/index.js';
export { LogoMeshError } from './errors.js';
export { createLogger, type Logger } from './log.js';
