import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../manifest/types.js';

/** How plugins of one language are packaged and started. */
export interface RuntimeImage {
  readonly runtime: Runtime;
  /** Image tag; rebuilt when the inputs hash in its label changes. */
  readonly tag: string;
  /** Build context folder (holds the Dockerfile and the SDK). */
  readonly contextDir: string;
  /** Command that starts the plugin whose code is mounted at /plugin. */
  command(entrypoint: string): string[];
  /** Extra environment for every plugin of this runtime. */
  readonly env: Readonly<Record<string, string>>;
}

/** Where the plugin folder appears inside its container. */
export const PLUGIN_MOUNT = '/plugin';
/** The unprivileged user every plugin runs as (created in each runtime image). */
export const PLUGIN_UID = 10001;
export const PLUGIN_GID = 10001;
export const PLUGIN_USER = `${PLUGIN_UID}:${PLUGIN_GID}`;

/** The repository's images/ folder, found from this module whether run from src/ or dist/. */
export const IMAGES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'images');
