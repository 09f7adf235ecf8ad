/** The manifest v2 after validation: every default filled in, deeply frozen. */
export type Runtime = 'python' | 'node' | 'go' | 'rust';
export type CapabilityScope = 'filesystem' | 'network' | 'memory' | 'system' | 'ui';
export type FsPermission = 'read' | 'write';

export interface Capability {
  readonly id: string;
  readonly scope: CapabilityScope;
  readonly permissions?: readonly FsPermission[];
  readonly paths?: readonly string[];
  readonly hosts?: readonly string[];
}

export interface Resources {
  readonly maxMemoryMB: number;
  readonly maxCpuPercent: number;
  readonly maxFileHandles: number;
  readonly maxNetworkConnections: number;
  readonly maxProcesses: number;
  readonly maxTmpMB: number;
}

/** 1: process isolation; 2: and capabilities (both always provided); 3: a sandboxing OCI runtime. */
export type IsolationLevel = 1 | 2 | 3;

export interface Security {
  /** System calls on LogoMesh's seccomp deny list that the plugin needs; the policy must allow each. */
  readonly syscalls: readonly string[];
  readonly isolationLevel: IsolationLevel;
}

export interface Dependencies {
  readonly system: readonly string[];
  readonly plugins: readonly string[];
  readonly packages: {
    readonly python?: readonly string[];
    readonly npm?: readonly string[];
    readonly go?: readonly string[];
    readonly rust?: readonly string[];
  };
}

/** The schemas one method declares. */
export interface MethodSchemas {
  readonly params?: object | boolean;
  readonly result?: object | boolean;
}

/** coordination.protobuf: a descriptor set in the plugin folder, and the message types of methods' params and results. */
export interface ProtobufDeclaration {
  /** A binary FileDescriptorSet (protoc --include_imports --descriptor_set_out), relative to the plugin folder. */
  readonly descriptorSet: string;
  readonly methods?: Readonly<Record<string, { readonly params?: string; readonly result?: string }>>;
}

export interface Coordination {
  readonly exposesMethods: readonly string[];
  readonly consumesMethods: readonly string[];
  readonly sharedMemory: boolean;
  /** JSON Schemas of exposed methods' params and results, checked by the hub (absent in manifests made in code: none). */
  readonly methodSchemas?: Readonly<Record<string, MethodSchemas>>;
  /** Declared protobuf message types for the data bridge (docs/data-bridge.md#declared-message-types). */
  readonly protobuf?: ProtobufDeclaration;
  readonly messaging: boolean;
  /** Topic patterns it may publish under (events, broadcasts). */
  readonly publishes: readonly string[];
  /** Topic patterns it may subscribe to and receive. */
  readonly subscribes: readonly string[];
}

export interface Health {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export type RestartPolicy = 'always' | 'on-failure' | 'never';

export interface Restart {
  readonly policy: RestartPolicy;
  readonly maxRetries: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** Keep a warm standby container that a crash or a restart switches to (docs/manifest.md#standby). */
  readonly standby: boolean;
}

/** CPU throttling over a window: the share of CFS periods in which the quota stopped the plugin. */
export interface ThrottleRule {
  readonly percent: number;
  readonly windowMs: number;
}

/** Pressure stall (PSI) over a window, per resource: the share of the window some tasks waited. */
export interface PressureRule {
  readonly cpu?: number;
  readonly memory?: number;
  readonly io?: number;
  readonly windowMs: number;
}

/** Thresholds that raise a violation event once per crossing (docs/monitoring.md#alerts). */
export interface MonitoringAlerts {
  readonly memoryPercent?: number;
  readonly processesPercent?: number;
  readonly fileHandlesPercent?: number;
  readonly tmpPercent?: number;
  readonly hysteresisPercent: number;
  readonly throttling?: ThrottleRule;
  readonly pressure?: PressureRule;
}

/** Rules under which the controller kills the plugin (docs/monitoring.md#kill-on-exceed). */
export interface KillOnExceed {
  readonly memory?: { readonly percent: number; readonly forMs: number };
  readonly throttling?: ThrottleRule;
  readonly pressure?: PressureRule;
}

export interface Monitoring {
  readonly alerts: MonitoringAlerts;
  readonly killOnExceed: KillOnExceed;
}

export interface Manifest {
  readonly id: string;
  readonly version: string;
  readonly runtime: Runtime;
  readonly entrypoint: string;
  readonly capabilities: readonly Capability[];
  readonly resources: Resources;
  readonly security: Security;
  readonly dependencies: Dependencies;
  readonly coordination: Coordination;
  readonly health: Health;
  readonly restart: Restart;
  readonly monitoring: Monitoring;
}

/** A granted filesystem path, resolved against the real plugin folder at load time. */
export interface GrantedPath {
  /** Capability that granted it. */
  readonly capability: string;
  /** Real absolute host path (symlinks resolved). */
  readonly hostPath: string;
  /** Path relative to the plugin folder, as the container sees it under /plugin. */
  readonly relative: string;
  readonly writable: boolean;
}

/** A manifest accepted whole, with where it came from. */
export interface LoadedManifest {
  readonly manifest: Manifest;
  /** Absolute path of the manifest file. */
  readonly file: string;
  /** Real absolute path of the plugin folder (the manifest's folder). */
  readonly pluginDir: string;
  readonly grantedPaths: readonly GrantedPath[];
  /** sha256 of the canonical JSON of the validated manifest. */
  readonly hash: string;
  /**
   * sha256 (hex) of exactly the bytes of the manifest file that were parsed (the file is
   * read once), so a signature check can compare what was signed with what was loaded.
   */
  readonly fileSha256: string;
}
