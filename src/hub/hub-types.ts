import type { Server } from 'node:http';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { PluginPolicy, TopicRevoked } from './acl.js';
import type { CallObserver, CallTarget } from './calls.js';
import type { HubMetrics } from './hub-metrics.js';
import type { SegmentBroker } from './segments.js';
import type { WsPeer } from './peer.js';
import type { Hello } from './protocol.js';
import type { PluginCredential } from './plugin-auth.js';

// The hub's options, what it shows of a plugin, and its record of one plugin's connection
// point (the state hub.ts and handover.ts share).

export interface HubOptions {
  readonly log: Logger;
  /** Bearer token host clients must present on the TCP endpoint. */
  readonly token: string;
  /** Largest message accepted, in bytes (default 1 MiB). */
  readonly maxMessageBytes?: number;
  /** WebSocket ping interval; a peer that misses two of the hub's pings is dropped (default 10 s). */
  readonly pingIntervalMs?: number;
  /** Outgoing bytes queued to one peer: above it events to it are dropped, and anything else cuts it off (default 8 x maxMessageBytes). */
  readonly maxQueuedBytes?: number;
  /** Where permission decisions go (the audit trail). Repeats are aggregated, one entry a second per kind with a count. */
  readonly audit?: AuditSink;
  /** Requests, events and broadcasts a plugin may send per second, sustained (default 20000; bursts of twice that). Responses are not counted. */
  readonly rateLimit?: number;
  /** Calls a plugin may have waiting for answers at once, and calls that may wait on one plugin (default 256). */
  readonly maxInFlight?: number;
  /** The same two limits for each host client connection (defaults: rateLimit and maxInFlight). */
  readonly hostRateLimit?: number;
  readonly hostMaxInFlight?: number;
  /** Calls that may wait on one plugin's answers at once, whoever made them (default 1024); their request bytes are bounded by half of maxQueuedBytes. */
  readonly maxWaitingPerPlugin?: number;
  /** Host clients connected at once (default 64). */
  readonly maxHostClients?: number;
  /** Topics one connection may subscribe to (default 256). */
  readonly maxSubscriptions?: number;
  /** uid:gid that may connect to plugin sockets (the plugin user); the socket is chowned to it. */
  readonly socketOwner?: { uid: number; gid: number };
  /**
   * Has the operator taken this method (`target.method`, or a host method name) from the
   * plugin? Asked on every call it makes (default: nothing is revoked). The answer's owner is
   * the controller's Grants; the hub keeps no copy.
   */
  readonly isMethodRevoked?: (pluginId: string, method: string) => boolean;
  /** Has the operator taken this declared topic pattern from the plugin? Asked on every publish, subscription and delivery (default: nothing is revoked). */
  readonly isTopicRevoked?: TopicRevoked;
  /** The shared-memory pool's side of the hub: `segment` messages and the handles messages carry (default: none; they are refused). */
  readonly segments?: SegmentBroker;
  /** Host methods host clients on the TCP endpoint may register and serve (default: none). */
  readonly hostMethods?: readonly string[];
  /**
   * Why a plugin's connection ended, when the controller can tell (its container was killed
   * for memory: LM_RESOURCE_MEMORY). Asked when a plugin's connection closes with calls
   * waiting on it; they fail with the answer, or with LM_PLUGIN_EXITED if none comes within
   * EXIT_CAUSE_WAIT_MS.
   */
  readonly exitCause?: (pluginId: string) => Promise<{ code: ErrorCode; message: string } | undefined>;
  /**
   * The metrics' series of calls and messages, kept by the hub on each connection
   * (hub-metrics.ts; the monitor's CallStats). Counts what observeCall and observeMessage are
   * told, without their per-message cost; when given, those two are not used. Default: none.
   */
  readonly metrics?: HubMetrics;
  /** Told of every plugin call answered or refused (metrics: caller, target, method, seconds, outcome). Default: none. */
  readonly observeCall?: CallObserver;
  /** Told of every message the intake steps accepted: its type and sender (metrics). Default: none. */
  readonly observeMessage?: (type: string, from: string) => void;
}
export interface PluginSlot {
  readonly policy: PluginPolicy;
  /** Its own Unix socket (one host), or absent: it connects over TCP with `credential` (across nodes). */
  readonly socketPath?: string;
  readonly credential?: PluginCredential;
  server?: Server;
  peer?: WsPeer;
  /** The router's view of the connected plugin (the calls waiting on it). */
  target?: CallTarget;
  ready: boolean;
  methods: string[];
  /** A warm standby's connection point (attachStandby), waiting to take this slot's place. */
  standby?: PluginSlot;
  /** A standby's hello, checked and held unanswered until it is switched in. */
  heldHello?: Hello;
}
export interface HubStats {
  readonly connected: boolean;
  readonly ready: boolean;
  readonly methods: readonly string[];
  readonly droppedMessages: number;
  /** The frames the hub speaks with it: msgpack when its hello asked for them, else JSON text. */
  readonly encoding: 'json' | 'msgpack';
}
