import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Runtime } from '../manifest/types.js';
import { IMAGES_DIR, VECTORS_DIR } from '../paths.js';

/** One image a runtime needs, built from a folder under images/. */
export interface ImageDef {
  /** Image tag; rebuilt when the inputs hash in its label changes. */
  readonly tag: string;
  /** Build context folder (holds the Dockerfile and the SDK). */
  readonly contextDir: string;
  /**
   * Files or folders from outside the context added to it (context path -> host path), such
   * as a Node.js binary from node_modules. They count in the inputs hash like the rest.
   */
  readonly extra?: Readonly<Record<string, string>>;
  /**
   * Runs before the inputs are hashed, to put extras in place (for example fetch a Node.js
   * binary with `npm pack` into a cache folder). Must be idempotent and cheap when done.
   */
  readonly prepare?: (log: import('../log.js').Logger) => Promise<void>;
}

/**
 * A compiled runtime builds one image per plugin: a builder stage compiles the plugin's
 * sources (the build context is the plugin folder), and the result is copied into a small
 * run image. Cached by a hash of the sources and of the images it builds FROM.
 */
export interface PluginCompile {
  /** The Dockerfile for a plugin's image; its context is the plugin folder. */
  dockerfile(entrypoint: string): string;
  /** Command that starts the compiled plugin inside that image. */
  readonly command: readonly string[];
}

/** How plugins of one language are packaged and started. */
export interface RuntimeImage {
  readonly runtime: Runtime;
  /** Images to build, in order (a builder before what builds FROM it). */
  readonly images: readonly ImageDef[];
  /** The image an interpreted plugin runs in (its code mounted at /plugin). */
  readonly tag: string;
  /** Command that starts an interpreted plugin whose code is mounted at /plugin. */
  command(entrypoint: string): string[];
  /** Present for compiled runtimes (Go, Rust). */
  readonly compile?: PluginCompile;
  /** Extra environment for every plugin of this runtime. */
  readonly env: Readonly<Record<string, string>>;
}

/** Where the plugin folder appears inside its container. */
export const PLUGIN_MOUNT = '/plugin';
/**
 * The unprivileged user of the runtime images (their /etc/passwd names it `plugin`), and of
 * the short-lived containers that are not plugins: dependency checks, `logomesh test`. A
 * plugin itself runs as its own user and group (pluginUid, pluginGid).
 */
const PLUGIN_UID = 10001;
const PLUGIN_GID = 10001;
export const PLUGIN_USER = `${PLUGIN_UID}:${PLUGIN_GID}`;

/**
 * The range of plugin users and groups, [from, to): far above a host's own users and groups
 * and the subordinate ids of user namespaces (/etc/subuid ranges start at 100000, 65536
 * each). The kernel audit rules (src/provision/kernel-audit.rules) match exactly this range.
 */
export const PLUGIN_IDS = Object.freeze({ from: 1_000_000_000, to: 1_100_000_000 });

/** Ids computed so far, by `uid|gid/scope/pluginId`. */
const ids = new Map<string, number>();

function derive(key: string): number {
  // Asked for every kernel record of a plugin process (a flood in a fork bomb): computed once.
  let id = ids.get(key);
  if (id === undefined) {
    id = PLUGIN_IDS.from + (createHash('sha256').update(key).digest().readUInt32BE(0) % (PLUGIN_IDS.to - PLUGIN_IDS.from));
    ids.set(key, id);
  }
  return id;
}

/**
 * A plugin container's primary group: one of its own, derived from the controller instance
 * and the plugin id, so the same plugin keeps it across restarts and adoption. The kernel
 * names it (`gid=`) when it logs a seccomp kill: with it, a kill is tied to its plugin even
 * when the killed process was a short-lived child that is gone by the time the log is read,
 * and no other controller on the host claims it.
 */
export function pluginGid(instance: string, pluginId: string): number {
  return derive(`${instance}/${pluginId}`);
}

/**
 * A plugin container's user: one of its own, so the files it writes through a write grant
 * are its own and no other plugin's, and a setuid copy of a binary it plants there gives
 * whoever runs it that plugin's identity only. Derived from the plugin id and the instance's
 * scope: the instance itself (a controller's is stable per home), except a one-shot run's
 * automatic instance (`run-<pid>-<hex>`), whose scope is `run`, so that a plugin has the same
 * user in every `logomesh run` and a folder it writes can be given to it once.
 */
export function pluginUid(instance: string, pluginId: string): number {
  const scope = /^run-\d+-[0-9a-f]+$/.test(instance) ? 'run' : instance;
  return derive(`uid/${scope}/${pluginId}`);
}

/** The plugin's user and group, as the engine takes them: `<pluginUid>:<pluginGid>`. */
export function pluginUser(instance: string, pluginId: string): string {
  return `${pluginUid(instance, pluginId)}:${pluginGid(instance, pluginId)}`;
}


/**
 * The protocol's constants and conformance transcript (images/protocol/), added to the build
 * context of every image that holds an SDK, under this name: the SDKs' tests read them at
 * /opt/logomesh/protocol, and a change of them rebuilds those images.
 */
export const PROTOCOL_EXTRA: Readonly<Record<string, string>> = { protocol: path.join(IMAGES_DIR, 'protocol'), vectors: VECTORS_DIR };
