// Types of the LogoMesh plugin SDK for Node.js (see docs/sdk/node.md).

export declare const SDK_VERSION: string;
export declare const PROTOCOL_VERSION: number;
/** Arrays and objects nest at most this deep in a hub message, the message itself being level 1. */
export declare const MAX_DEPTH: number;

/** Any value that survives JSON.stringify / JSON.parse. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An error with a LogoMesh code such as 'LM_INVALID_ARGUMENT' or 'LM_TIMEOUT'. */
export declare class LogoMeshError extends Error {
  constructor(code: string, message?: string, details?: unknown);
  readonly name: 'LogoMeshError';
  readonly code: string;
  readonly details: unknown;
  toJSON(): { code: string; message: string; details?: unknown };
}

/** What a method handler learns about the request besides its data. */
export interface RequestContext {
  /** The caller: a plugin id or "host". */
  readonly from: string;
  readonly method: string;
  /** The caller's timeout in ms, as the hub forwarded it. */
  readonly timeout?: number;
}

/**
 * What an event handler learns about the message besides its data. `from` and `topic` are
 * the hub's: it sets `from` on everything it relays, so `from` is who really sent it,
 * whatever the data claims.
 */
export interface EventMeta {
  readonly type: 'event' | 'broadcast';
  /** Undefined for a broadcast without a topic. */
  readonly topic?: string;
  /** The sender, as the hub knows it: a plugin id, or "host". */
  readonly from: string;
  readonly timestamp: number;
}

export type MethodHandler<A = any, R = unknown> = (data: A, ctx: RequestContext) => R | Promise<R>;
export type EventHandler<D = any> = (data: D, meta: EventMeta) => void | Promise<void>;

export interface PluginOptions {
  /** Handlers by method name (the same as calling method() for each). */
  methods?: Record<string, MethodHandler>;
  /** Default: LOGOMESH_HUB_SOCKET, else /run/logomesh/hub.sock. */
  socketPath?: string;
  /**
   * A hub across nodes, `ws://host:port/v1` or `wss://` (default: LOGOMESH_HUB_URL, unless
   * `socketPath` is given). Each connection proves the plugin's identity with an HMAC of its
   * key, the file LOGOMESH_HUB_CREDENTIAL names (docs/kubernetes.md).
   */
  hubUrl?: string;
  /** Default: LOGOMESH_PLUGIN_ID. */
  pluginId?: string;
  /**
   * End the process when run() is over: code 0 after a clean shutdown, 1 after a failure
   * (written to the log as one line). Default true; false: run() resolves or rejects.
   */
  exit?: boolean;
  /** Treat SIGTERM and SIGINT like the hub's shutdown. Default true. */
  handleSignals?: boolean;
  /** Grace period for in-flight requests on SIGTERM/SIGINT/shutdown(), in ms. Default 5000. */
  graceMs?: number;
  /** How long run() retries a socket that is not there yet, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * How long to try to reconnect after an established connection is lost, in ms.
   * Default: LOGOMESH_RECONNECT_MS, else 60000; 0 never reconnects (run() rejects at once).
   */
  reconnectMs?: number;
  /** 'msgpack': hello offers binary frames, and once the hub agrees both sides speak msgpack (default: LOGOMESH_FRAMES, else 'json'). */
  frames?: 'json' | 'msgpack';
  /**
   * A warm standby: wait for the answer to the first hello without a timeout (the hub
   * answers it when the controller switches the standby in). Default: LOGOMESH_STANDBY=1,
   * which the controller sets on a standby's container.
   */
  standby?: boolean;
  /** Where SDK diagnostics go; false silences them. Default: stderr. */
  log?: false | ((level: 'info' | 'warn' | 'error', message: string) => void);
}

export declare class Plugin {
  constructor(options?: PluginOptions);
  /** The plugin id (LOGOMESH_PLUGIN_ID, or the one the hub reports after hello). */
  id: string;
  /** Serve a method; register every method before run(). */
  method<A = unknown, R = unknown>(name: string, handler: MethodHandler<A, R>): this;
  methods(map: Record<string, MethodHandler>): this;
  /**
   * Call 'plugin-id.method', or a host method when the name has no dot. While the SDK
   * reconnects to the hub, waits for the connection within the timeout.
   */
  call<R = unknown>(target: string, data?: unknown, options?: { timeout?: number } | number): Promise<R>;
  /**
   * Emit an event (needs coordination.messaging: true). With `ack`, resolves once the hub
   * published it and rejects with the hub's refusal (LM_PERMISSION_DENIED, LM_RATE_LIMITED).
   */
  emit(topic: string, data?: unknown, options?: { to?: string[]; ack?: boolean }): Promise<void>;
  /** Broadcast to every other plugin and host client, or to a topic's subscribers; `ack` as for emit. */
  broadcast(topic: string | null | undefined, data?: unknown, options?: { ack?: boolean }): Promise<void>;
  /**
   * Handle events and broadcasts matching 'a.b', 'a.*' or '*'; resolves when subscribed.
   * Patterns registered before run() go in hello's subscriptions (subscribed before the
   * plugin is ready); later ones are subscribed at once. Each must be covered by the
   * manifest's coordination.subscribes, or the hub refuses it (LM_PERMISSION_DENIED: in
   * hello, run() rejects). A refusal while serving rejects the promise and drops the
   * handlers registered for that subscription, so no later hello (after a reconnect) names
   * the pattern; a lost connection or no answer is not a refusal (the handlers stay).
   */
  on<D = unknown>(pattern: string, handler: EventHandler<D>): Promise<void>;
  /** Remove a handler (or all handlers) of a pattern. */
  off(pattern: string, handler?: EventHandler): Promise<void>;
  /** Runs during shutdown, after in-flight requests answered, before the socket closes. */
  onShutdown(fn: () => unknown): this;
  /** Resolves once connected and the hub accepted hello. */
  ready(): Promise<void>;
  /**
   * Connect, say hello, serve until shutdown; then exit 0 (or resolve with exit: false).
   * Reconnects after a lost connection. Fails when the hub cannot be reached, refuses
   * hello, or is not back within reconnectMs: exits 1 after one line in the log (or rejects
   * with exit: false).
   */
  run(): Promise<void>;
  /** Shut down as if the hub asked. */
  shutdown(graceMs?: number): Promise<void>;
  /** A new shared-memory segment of size bytes, owned by this plugin (needs coordination.sharedMemory). */
  allocate(size: number): Promise<Segment>;
  /** The segment published under key, with read access given to this plugin. */
  lookup(key: string): Promise<Segment>;
  /** The segments this plugin owns or holds. */
  segments(): Promise<SegmentInfo[]>;
  /** A Segment for a handle received some other way. */
  segment(handle: SegmentHandle | { $segment: SegmentHandle }): Segment;
}

/** Does a subscription pattern ('a.b', 'a.*', '*') match a topic? */
export declare function topicMatches(pattern: string, topic: string): boolean;

export interface SegmentHandle {
  readonly id: string;
  readonly owner: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
}

export interface SegmentInfo extends SegmentHandle {
  readonly holders: readonly { plugin: string; access: 'read' | 'write' }[];
  readonly mode: string;
  readonly createdAt: number;
  readonly ageMs: number;
}

export type Format = 'json' | 'msgpack' | 'protobuf';

/**
 * A shared-memory segment (docs/shared-memory.md). Node.js cannot map a file, so read and
 * write each copy once, between the shared pages and a Buffer. Put one (or seg.grant('read'))
 * anywhere in a call's data, a result or an event's data: the SDK sends its handle, and the
 * receiver gets a Segment.
 */
export declare class Segment implements SegmentHandle {
  readonly id: string;
  readonly owner: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
  handle(): SegmentHandle;
  grant(access?: 'read' | 'write'): unknown;
  read(offset?: number, length?: number): Buffer;
  slice(start?: number, end?: number): Buffer;
  write(data: Uint8Array | string, offset?: number): number;
  close(): void;
  writeStructured(value: unknown, format?: Format, message?: MessageType): number;
  readStructured(format?: Format, message?: MessageType): unknown;
  resize(size: number): Promise<void>;
  setReadOnly(): Promise<void>;
  share(plugins: string[], access?: 'read' | 'write'): Promise<void>;
  publish(key: string, ttlMs: number): Promise<void>;
  release(): Promise<void>;
  free(): Promise<void>;
}

export declare function encodeStructured(value: unknown, format: Format): Uint8Array;
export declare function decodeStructured(payload: Uint8Array, format: Format): unknown;
export declare function frameStructured(value: unknown, format: Format): Buffer;
export declare function unframeStructured(bytes: Uint8Array, format?: Format): { value: unknown; format: Format };
/** `value` as a declared message type (format protobuf), with the data bridge's header. */
export declare function frameMessage(message: MessageType, value: unknown, format?: Format): Buffer;
/** The declared message type a structured segment's bytes hold; its header must say protobuf (LM_SEGMENT otherwise). */
export declare function unframeMessage(bytes: Uint8Array, message: MessageType, format?: Format): unknown;

/**
 * Declared protobuf message types: the messages of a binary FileDescriptorSet (protoc
 * --include_imports --descriptor_set_out). Values map to messages the proto3 JSON way (json
 * names, 64-bit integers as strings, bytes as base64, enums by name). A value that does not fit
 * throws LM_INVALID_ARGUMENT naming the type, the JSON path, what was expected and found.
 */
export declare class ProtobufTypes {
  static fromBinary(bytes: Uint8Array, source?: string): ProtobufTypes;
  static load(path: string): ProtobufTypes;
  messageNames(): string[];
  encode(typeName: string, value: unknown): Uint8Array;
  decode(typeName: string, bytes: Uint8Array): unknown;
}

/** A declared message type for format protobuf: its full name and the descriptor set that declares it. */
export interface MessageType {
  type: string;
  types: ProtobufTypes;
}

/**
 * The Authorization header a plugin sends to a hub across nodes: HMAC-SHA256 of its key over
 * `logomesh-hub-v1\n<id>\n<ts>\n<nonce>` (docs/kubernetes.md). `nonce` is 32 lower-case hex
 * digits, `ts` ms since the epoch. The SDK computes it itself at every connection attempt.
 */
export function hubAuthorization(key: Uint8Array, pluginId: string, ts: number, nonce: string): string;
