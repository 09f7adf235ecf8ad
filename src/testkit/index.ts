/**
 * LogoMesh's test kit for plugin authors' CI (`logomesh/testing`, docs/testing-plugins.md):
 * a plugin or a set of plugins under a real controller, in their real sandboxes, with host
 * method stubs, events, usage and the audit trail at hand; a reaper started with
 * testcontainers removes everything if the test process dies. Needs `testcontainers`
 * (a peer dependency) and a Docker engine.
 */
export { LogoMeshEnvironment, StartedLogoMeshEnvironment, type HeardEvent, type HostCall } from './environment.js';
export type { ContainerUsage } from './usage.js';
