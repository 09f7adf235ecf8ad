// Types of 'logomesh/testing', the fake hub for a plugin's own tests (see docs/sdk/node.md).

/** The hub's end of the plugin's connection: a WebSocket of the `ws` package. */
export interface HubSocket {
  send(data: string): void;
  ping(data?: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  readonly readyState: number;
}

/** A message the plugin sent, as parsed JSON. */
export type Message = { type: string; id: string; [field: string]: any };

/** The plugin did not do what the transcript expects at some step. */
export declare class Mismatch extends Error {}

/** Where protocol.json and transcript.json are: LOGOMESH_PROTOCOL_DIR, else /opt/logomesh/protocol. */
export declare const PROTOCOL_DIR: string;
/** The protocol's conformance session (images/protocol/transcript.json of LogoMesh). */
export declare function loadTranscript(): { steps: object[] };
/** The protocol's constants (images/protocol/protocol.json of LogoMesh). */
export declare function loadProtocol(): Record<string, unknown>;

export interface FakeHubOptions {
  /** The plugin's id: the target of requests, and what hello's answer names. Default 'fake'. */
  pluginId?: string;
  /** Start listening at once (with FakeHub.start). Default true. */
  listen?: boolean;
  /** Refuse hello with this error. */
  helloError?: { code: string; message: string; details?: unknown };
  /**
   * The manifest's coordination.subscribes: a hello or subscribe asking for a topic none of
   * these patterns covers is refused with LM_PERMISSION_DENIED, as the hub does. Default: any.
   */
  subscribes?: string[];
  /** Answer hello, subscribe and unsubscribe. Default true. */
  answerControl?: boolean;
  /** Play this recorded session on the plugin's connection instead; see replayed(). */
  transcript?: { steps: object[] };
}

/** A stand-in for the LogoMesh hub on a Unix socket in a temporary folder. */
export declare class FakeHub {
  constructor(options?: FakeHubOptions);
  static start(options?: FakeHubOptions): Promise<FakeHub>;
  /** Give it to the plugin as socketPath (or LOGOMESH_HUB_SOCKET). */
  readonly socketPath: string;
  readonly dir: string;
  readonly upgrades: { url: string; host: string }[];
  /** Topics the plugin is subscribed to on its current connection (hello's and subscribe's). */
  subscriptions: Set<string>;
  ws: HubSocket | null;
  connections: number;
  listen(): Promise<void>;
  /** The next message from the plugin that matches (a type name or a predicate). */
  next(match: string | ((m: Message) => boolean), timeoutMs?: number): Promise<Message>;
  connection(timeoutMs?: number): Promise<HubSocket>;
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  /** Send a frame as is (a timestamp is added). */
  send(msg: Record<string, unknown>): void;
  /** Deliver a request to the plugin as the hub would, and wait for its response. */
  request(method: string, data?: unknown, options?: { from?: string; timeout?: number; waitMs?: number }): Promise<Message>;
  sendRequest(method: string, data?: unknown, options?: { from?: string }): string;
  respond(request: Message, data: unknown): void;
  respondError(request: Message, error: { code: string; message: string; details?: unknown }): void;
  /** Deliver an event; `from` is the sender the hub vouches for. */
  event(topic: string, data?: unknown, from?: string): void;
  broadcast(topic: string | null | undefined, data?: unknown, from?: string): void;
  shutdown(graceMs: number): void;
  drop(): Promise<void>;
  crash(): Promise<void>;
  restart(): Promise<void>;
  /** With a transcript: resolves once the plugin followed it to its end; rejects with a Mismatch. */
  replayed(timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}
