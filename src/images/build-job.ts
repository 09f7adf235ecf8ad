import type { Logger } from '../log.js';

export interface EnsureImageOptions {
  readonly log: Logger;
  /** Where build progress goes; progress lines are written only when it is a TTY. */
  readonly progress?: NodeJS.WriteStream;
}

/** An image that is current: found with the same inputs hash, or just built with it. */
export interface EnsuredImage {
  readonly tag: string;
  readonly id: string;
  readonly built: boolean;
  readonly inputsHash: string;
}

/** What to build: a context (a folder plus extras) and the labels to put on the image. */
export interface BuildJob {
  readonly tag: string;
  readonly contextDir: string;
  readonly extra: Readonly<Record<string, string>>;
  /** A generated Dockerfile added to the context under this name, if any. */
  readonly dockerfile?: { name: string; text: string };
  /** The whole context as a tar, already taken (a compiled plugin's snapshot): sent as is, the folder is not read. */
  readonly contextTar?: Buffer;
  readonly labels: Readonly<Record<string, string>>;
  /** What to call it in progress lines. */
  readonly title: string;
}
