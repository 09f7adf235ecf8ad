import type { AuditLog } from '../audit/audit-log.js';
import type { Docker } from '../engine/docker.js';
import type { Grants } from '../grants/grants.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Policy } from '../policy/policy.js';
import type { KernelWatch } from '../violations/kernel-watch.js';
import type { DebugMode } from './debug/debug-mode.js';
import type { EgressHandle } from './egress-handle.js';
import type { EngineWatch } from './engine-watch.js';
import type { Home } from './home.js';
import type { Monitoring } from './monitoring.js';
import type { ControllerOptions } from './options.js';
import type { PluginRegistry } from './registry.js';
import type { Segments } from './segments.js';

/**
 * What the controller's parts share: each part owns its own state and reaches the others'
 * through here. Built once by the Controller.
 */
export interface ControllerContext {
  readonly docker: Docker;
  readonly log: Logger;
  readonly opts: ControllerOptions;
  readonly home: Home;
  readonly hub: Hub;
  readonly audit: AuditLog;
  readonly grants: Grants;
  readonly registry: PluginRegistry;
  readonly egress: EgressHandle;
  /** The shared-memory pool, its cache and the hub's broker for them. */
  readonly segments: Segments;
  readonly engine: EngineWatch;
  /** Debug mode's debuggers (absent: not in debug mode). */
  readonly debug: DebugMode | undefined;
  /** The resource monitor, violations, metrics and the health check program. */
  readonly monitoring: Monitoring;
  /** The kernel's records of plugin processes (absent: not followed). */
  readonly kernel: KernelWatch | undefined;
  /** The policy in force. */
  policy(): Policy;
  /** Is the controller closing (nothing starts or restarts any more)? */
  closing(): boolean;
  /** Save state.json: within SavedState's COALESCE_MS, with the other saves of that time. */
  persist(): void;
  /** A plugin's own user and group under this controller. */
  idsOf(id: string): [uid: number, gid: number];
}
