import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../manifest/types.js';

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
/** The unprivileged user every plugin runs as (created in each runtime image). */
export const PLUGIN_UID = 10001;
export const PLUGIN_GID = 10001;
export const PLUGIN_USER = `${PLUGIN_UID}:${PLUGIN_GID}`;

/** The range of plugin groups: far above the groups a host or its user namespaces use. */
const PLUGIN_GROUPS_FROM = 1_000_000_000;
const PLUGIN_GROUPS = 100_000_000;

/** Plugin groups computed so far, by `instance/pluginId`. */
const gids = new Map<string, number>();

/**
 * A plugin container's primary group: one of its own, derived from the controller instance
 * and the plugin id, so the same plugin keeps it across restarts and adoption. The kernel
 * names it (`gid=`) when it logs a seccomp kill: with it, a kill is tied to its plugin even
 * when the killed process was a short-lived child that is gone by the time the log is read,
 * and no other controller on the host claims it. PLUGIN_GID stays a supplementary group, so
 * group permissions on granted paths and the runtime images work as before.
 */
export function pluginGid(instance: string, pluginId: string): number {
  // Asked for every kernel record of a plugin process (a flood in a fork bomb): computed once.
  const key = `${instance}/${pluginId}`;
  let gid = gids.get(key);
  if (gid === undefined) {
    gid = PLUGIN_GROUPS_FROM + (createHash('sha256').update(key).digest().readUInt32BE(0) % PLUGIN_GROUPS);
    gids.set(key, gid);
  }
  return gid;
}

/** The plugin's user: PLUGIN_UID with its own primary group. */
export function pluginUser(instance: string, pluginId: string): string {
  return `${PLUGIN_UID}:${pluginGid(instance, pluginId)}`;
}

/** The repository's root, images/ folder and node_modules, found from this module in src/ or dist/. */
export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IMAGES_DIR = path.join(REPO_DIR, 'images');

/**
 * The protocol's constants and conformance transcript (images/protocol/), added to the build
 * context of every image that holds an SDK, under this name: the SDKs' tests read them at
 * /opt/logomesh/protocol, and a change of them rebuilds those images.
 */
export const PROTOCOL_EXTRA: Readonly<Record<string, string>> = { protocol: path.join(IMAGES_DIR, 'protocol') };
