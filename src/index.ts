/**
 * LogoMesh as a library: what a program needs to embed the controller (create it, load
 * plugin folders, start them, serve host methods, call plugins, hear and emit events,
 * close it), to load and validate manifests, and to run one plugin to completion in its
 * sandbox. The `logomesh` command is built on this API and the control client alone.
 * See docs/embedding.md.
 *
 *   import { Controller, resolveHome, createLogger } from 'logomesh';
 *   const controller = await Controller.create({ log: createLogger(), home: resolveHome() });
 *   controller.loadDirectory('manifests');
 *   await controller.startAll();
 *   console.log(await controller.call('tokenizer', 'tokenize', { text: 'a b' }));
 *   await controller.close();
 */

// --- the controller ---------------------------------------------------------------------------
export { Controller, type ApplyOptions, type ControllerOptions } from './controller/controller.js';
export { loadFolders, pluginFolders } from './manifest/folders.js';
export type { CapabilityDecision } from './controller/capabilities.js';
export { controllerOptionsFromEnv, hostMethodsFromEnv, hubTokenFromEnv } from './controller/env.js';
export { pluginSocketDir, resolveHome, type Home } from './controller/home.js';
export type { ApplyResult, ApplyStep, BoostEnd, BoostStatus, ControllerStatus, DeployPlan, EngineStatus, LogLine, PathGrantAnswer, PlannedChange, PlanStep, PluginState, PluginStatus, SegmentRow } from './controller/types.js';
export type { MonitoringOptions } from './controller/options.js';
export { VIOLATION_TOPIC } from './controller/violation-routing.js';

// --- resource monitoring ----------------------------------------------------------------------
export { statsJson, statsTable, type StatsRow } from './monitor/stats-table.js';
export { metricsAddress, startMetricsEndpoint, type MetricsEndpoint } from './monitor/metrics-server.js';
export { consoleAddress, type ConsoleAddress } from './console/address.js';
export { startConsole, type ConsoleEndpoint, type ConsoleOptions } from './console/server.js';
export { openConsole, consoleTokenFiles } from './console/open.js';
export type { ConsoleHost } from './console/host.js';
export type { ChangedLimit, LimitChange } from './monitor/enforce-limit.js';
export type { MonitorMetrics } from './monitor/metrics.js';
export type { ResourceUsage, ResourceViolation, ViolationKind } from './monitor/types.js';
export { ControlClient } from './control/client.js';
export { openEndpoints, type Endpoints } from './control/endpoints.js';
export type { PathGrant } from './grants/path-grants.js';
export type { HostMethod } from './hub/hub.js';
export { hubLimitsFromEnv, type HubLimits } from './hub/limits-from-env.js';

// --- manifests --------------------------------------------------------------------------------
export { findManifest, loadManifest, manifestSchema, MANIFEST_NAMES } from './manifest/index.js';
export type { Capability, Coordination, LoadedManifest, Manifest, Runtime } from './manifest/index.js';
export { isTopicPattern, topicMatches } from './manifest/topics.js';
export { crossCheck as crossCheckManifests } from './manifest/cross-check.js';

// --- running plugins --------------------------------------------------------------------------
export { runPlugin, type RunOptions, type RunResult } from './sandbox/run-plugin.js';
export type { SandboxHooks } from './sandbox/prepare.js';
export { EXIT_SIGSYS, followSeccompKills, type SeccompKills } from './sandbox/seccomp-kills.js';
export { removeRunOrphans } from './sandbox/orphans.js';
export { removeStagingLeftovers } from './sandbox/mount-staging.js';
export { preparePluginImage } from './images/plugin-image.js';
export { ensureRuntimeImage } from './images/build.js';
export { availableRuntimes, runtimeImage, type RuntimeImage } from './runtimes/index.js';
export { connectEngine, engineError, type Docker } from './engine/docker.js';
export { removeByLabel, type Removed } from './engine/cleanup.js';
export { instanceId } from './labels.js';

// --- policy, signing, audit -------------------------------------------------------------------
export { applyPolicyOption, loadPolicy, NO_POLICY, resolvePolicy, type Policy } from './policy/policy.js';
export { enforcePolicy } from './policy/decisions.js';
export { generateKeyFiles, signPlugin, signedContentOf, verifyPlugin, type KeyFiles, type SignedContent, type SignResult, type Verification } from './signing/index.js';
export { auditEntries, checkAudit, readAudit, type AuditCheck, type AuditEntry, type AuditQuery } from './audit/audit-log.js';

// --- plugin authors' tools --------------------------------------------------------------------
export { scaffoldPlugin, type ScaffoldOptions, type Scaffolded } from './scaffold/create.js';
export { runPluginTests, type PluginTestOptions, type PluginTestResult } from './scaffold/plugin-tests.js';

// --- errors and logs --------------------------------------------------------------------------
export { formatIssue, isLogoMeshError, LogoMeshError, ManifestRejectedError, type ErrorCode, type ManifestIssue } from './errors.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export { renderKubeFolder, type KubeRenderOptions } from './kubernetes/render-folder.js';
export { decodeStructured, encodeStructured, frameStructured, unframeStructured, type Format, type MessageType } from './memory/bridge.js';
export { ProtobufTypes } from './protobuf/types.js';
export { protobufTypesOf } from './manifest/protobuf.js';
export { generateSchema, type JsonSchema } from './memory/generate-schema.js';
export type { Access, SegmentHandle, SegmentInfo } from './memory/segment.js';
export { removeLeftPoolOf, type Segments } from './controller/segments.js';
export { KubeBackend, type KubeBackendOptions } from './controller/kube-backend.js';
export { isRenderedDir, loadRendered, type RenderedPlugin } from './kubernetes/rendered.js';
export { DockerBackend } from './controller/docker-backend.js';
export type { Backend, BackendName, Workload } from './controller/backend.js';
export { hubAuthorization } from './kubernetes/hub-auth.js';
export type { PluginCredential } from './hub/hub.js';
