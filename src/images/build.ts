import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pack, type Pack } from 'tar-fs';
import { LogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { ImageDef, RuntimeImage } from '../runtimes/runtime.js';
import { engineStatus, errorText, type Docker } from '../engine/docker.js';
import { snapshotDifferences, snapshotFolder, type FolderSnapshot } from './plugin-snapshot.js';

export interface EnsureImageOptions {
  readonly log: Logger;
  /** Where build progress goes; progress lines are written only when it is a TTY. */
  readonly progress?: NodeJS.WriteStream;
}

export interface EnsuredImage {
  readonly tag: string;
  readonly id: string;
  readonly built: boolean;
  readonly inputsHash: string;
}

/** What to build: a context (a folder plus extras) and the labels to put on the image. */
interface BuildJob {
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

// eslint-disable-next-line no-control-regex -- matching the escape character is the point
const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

/** One build per tag at a time in this process; concurrent callers share it. */
const inFlight = new Map<string, Promise<EnsuredImage>>();

function once(tag: string, fn: () => Promise<EnsuredImage>): Promise<EnsuredImage> {
  let p = inFlight.get(tag);
  if (!p) {
    p = fn().finally(() => inFlight.delete(tag));
    inFlight.set(tag, p);
  }
  return p;
}

/**
 * Build a runtime's images unless ones with the same inputs exist. The inputs are every
 * file of the build context and the id of each base image, hashed into a label, so an edit
 * to a Dockerfile or an SDK, or a rebuilt base image, triggers a rebuild and nothing else does.
 */
export async function ensureRuntimeImage(docker: Docker, runtime: RuntimeImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  let last: EnsuredImage | undefined;
  for (const def of runtime.images) last = await ensureImage(docker, def, opts);
  if (!last) throw new LogoMeshError('LM_IMAGE_BUILD', `runtime ${runtime.runtime} names no image`, {});
  return last;
}

export function ensureImage(docker: Docker, def: ImageDef, opts: EnsureImageOptions): Promise<EnsuredImage> {
  return once(def.tag, async () => {
    await def.prepare?.(opts.log);
    return ensure(
      docker,
      {
        tag: def.tag,
        contextDir: def.contextDir,
        extra: def.extra ?? {},
        labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'runtime-image' },
        title: def.tag,
      },
      readFileSync(path.join(def.contextDir, 'Dockerfile'), 'utf8'),
      opts,
    );
  });
}

export interface PluginImageOptions extends EnsureImageOptions {
  /** Plugin-relative paths left out of the build context: the mutable paths (write grants inside the folder). */
  readonly exclude?: readonly string[];
  /**
   * The files a verified signature lists: the build context must hold exactly these, as
   * they were hashed when the signature was checked (LM_SIGNATURE otherwise).
   */
  readonly signedFiles?: Readonly<Record<string, string>>;
  /** Test hook: called once the build context is taken, before it is built (a test swaps a source file there). */
  readonly afterSnapshot?: (snapshot: FolderSnapshot) => void | Promise<void>;
  /**
   * `debug`: the plugin's debug build (`logomesh dev --debug`), tagged
   * `logomesh/plugin-<id>-debug`, so that it and the plugin's own image do not remove
   * each other as older builds.
   */
  readonly variant?: 'debug';
}

/**
 * For a compiled runtime: the plugin's own image, built by the runtime's builder stage from
 * one snapshot of its folder (plugin-snapshot.ts): each file read once, compared with the
 * signature's hashes when it is signed, packed, and the image built from that very tar and
 * tagged with its hash (and the base images'), so an unchanged plugin is never rebuilt and a
 * tag never names sources other than the ones it was computed from. Older images of the
 * same plugin are removed once the new one exists.
 */
export async function ensurePluginImage(docker: Docker, runtime: RuntimeImage, loaded: LoadedManifest, opts: PluginImageOptions): Promise<EnsuredImage> {
  if (!runtime.compile) throw new LogoMeshError('LM_IMAGE_BUILD', `runtime ${runtime.runtime} does not compile plugins`, {});
  await ensureRuntimeImage(docker, runtime, opts);
  const { id } = loaded.manifest;
  const text = runtime.compile.dockerfile(loaded.manifest.entrypoint);
  const dockerfile = { name: '.logomesh.Dockerfile', text };
  const snapshot = await snapshotFolder(loaded.pluginDir, { exclude: opts.exclude ?? [], added: [dockerfile] });
  if (opts.signedFiles) {
    const differences = snapshotDifferences(snapshot, opts.signedFiles);
    if (differences.length) {
      throw new LogoMeshError('LM_SIGNATURE', `${loaded.pluginDir}: plugin ${id} refused: files changed between the signature check and the build: ${differences.join(', ')}`, {
        file: loaded.pluginDir,
        plugin: id,
        expected: 'the files as the verified signature lists them',
        found: differences.join(', '),
      });
    }
  }
  await opts.afterSnapshot?.(snapshot);
  const inputs = createHash('sha256').update(`tar\0${snapshot.sha256}\0`);
  for (const [base, imageId] of await baseImageIds(docker, text, path.join(loaded.pluginDir, dockerfile.name))) inputs.update(`${base}=${imageId}\0`);
  const inputsHash = inputs.digest('hex');
  const repository = `logomesh/plugin-${id}${opts.variant ? `-${opts.variant}` : ''}`;
  const tag = `${repository}:${inputsHash.slice(0, 16)}`;
  const image = await once(tag, () =>
    ensure(
      docker,
      {
        tag,
        contextDir: loaded.pluginDir,
        contextTar: snapshot.tar,
        extra: {},
        dockerfile,
        labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'plugin-image', [LABEL.plugin]: id },
        title: `plugin ${id}`,
      },
      text,
      opts,
      inputsHash,
    ),
  );
  if (image.built) await removeOlderPluginImages(docker, id, repository, image.id, opts.log);
  return image;
}

/**
 * Build an image from a generated context folder (holding its Dockerfile) unless the tag
 * already carries this inputs hash; the caller computes the hash from what the image is
 * made of. One build per tag at a time in this process.
 */
export function ensureGeneratedImage(
  docker: Docker,
  job: { tag: string; contextDir: string; labels: Readonly<Record<string, string>>; title: string },
  inputsHash: string,
  opts: EnsureImageOptions,
): Promise<EnsuredImage> {
  return once(job.tag, () => ensure(docker, { ...job, extra: {} }, '', opts, inputsHash));
}

async function removeOlderPluginImages(docker: Docker, plugin: string, repository: string, keep: string, log: Logger): Promise<void> {
  const filters = JSON.stringify({ label: [`${LABEL.role}=plugin-image`, `${LABEL.plugin}=${plugin}`] });
  const images = await docker.listImages({ filters });
  const kept = images.find((i) => i.Id === keep);
  for (const img of images) {
    // Only older builds: a newer one belongs to another controller building other sources.
    if (img.Id === keep || (kept && img.Created >= kept.Created)) continue;
    // Only builds of the same kind: the plugin's own image and its debug build both stay.
    const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    if (tags.length && !tags.some((t) => t.startsWith(`${repository}:`))) continue;
    // In use by a container: it stays until a later build.
    await docker.getImage(img.Id).remove().catch((err: unknown) => log.debug({ image: img.Id, err: errorText(err) }, 'older plugin image kept'));
  }
}

async function ensure(docker: Docker, job: BuildJob, dockerfileText: string, opts: EnsureImageOptions, knownHash?: string): Promise<EnsuredImage> {
  const inputsHash = knownHash ?? (await contextHash(docker, job.contextDir, job.extra, dockerfileText));
  const existing = await inspectImage(docker, job.tag);
  if (existing && existing.Config?.Labels?.[LABEL.inputsHash] === inputsHash) {
    return { tag: job.tag, id: existing.Id, built: false, inputsHash };
  }
  opts.log.info({ image: job.tag, inputsHash }, 'building image');
  const started = Date.now();
  await build(docker, job, inputsHash, opts);
  const built = await inspectImage(docker, job.tag);
  if (!built) throw new LogoMeshError('LM_IMAGE_BUILD', `image ${job.tag} is missing after its build`, { image: job.tag });
  opts.log.info({ image: job.tag, ms: Date.now() - started }, 'image built');
  return { tag: job.tag, id: built.Id, built: true, inputsHash };
}

async function inspectImage(docker: Docker, tag: string) {
  try {
    return await docker.getImage(tag).inspect();
  } catch (err) {
    if (engineStatus(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Extra files up to this size are hashed by their bytes, like the context; larger ones (a
 * Node.js binary) by size and mtime, since reading them on every run would cost more than a
 * build check should. Small ones must not depend on mtime: the controller's image (compose)
 * holds images/ and node_modules/ with whole seconds of it only, and would otherwise
 * disagree with the host about which runtime images are current.
 */
const EXTRA_CONTENT_HASH_MAX = 1024 * 1024;

/**
 * sha256 over the relative path and bytes of every context file, the bytes of each small
 * extra file and the size and mtime of each large one, and the ids of the images the
 * Dockerfile builds FROM.
 */
export async function contextHash(
  docker: Docker,
  contextDir: string,
  extra: Readonly<Record<string, string>>,
  dockerfileText: string,
  generatedName?: string,
): Promise<string> {
  const hash = createHash('sha256');
  for (const rel of listFiles(contextDir)) {
    hash.update(`${rel}\0`);
    hash.update(readFileSync(path.join(contextDir, rel)));
    hash.update('\0');
  }
  for (const [name, hostPath] of Object.entries(extra).sort(([a], [b]) => a.localeCompare(b))) {
    for (const rel of statSync(hostPath).isDirectory() ? listFiles(hostPath) : ['']) {
      const file = rel ? path.join(hostPath, rel) : hostPath;
      const st = statSync(file);
      if (st.size <= EXTRA_CONTENT_HASH_MAX) hash.update(Buffer.concat([Buffer.from(`extra:${name}/${rel}\0`), readFileSync(file), Buffer.from('\0')]));
      else hash.update(`extra:${name}/${rel}\0${st.size}\0${st.mtimeMs}\0`);
    }
  }
  if (generatedName) hash.update(`${generatedName}\0${dockerfileText}\0`);
  for (const [base, id] of await baseImageIds(docker, dockerfileText, path.join(contextDir, generatedName ?? 'Dockerfile'))) hash.update(`${base}=${id}\0`);
  return hash.digest('hex');
}

/** The id of every base image the Dockerfile builds FROM. Throws LM_IMAGE_BUILD for one not on the engine. */
async function baseImageIds(docker: Docker, dockerfileText: string, file: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const base of baseImages(dockerfileText)) {
    const found = await inspectImage(docker, base);
    if (!found) {
      throw new LogoMeshError('LM_IMAGE_BUILD', `base image ${base} (FROM in the Dockerfile ${file}) is not on this engine; run 'npm run provision'`, {
        file,
        expected: `image ${base}`,
        found: 'nothing',
      });
    }
    out.push([base, found.Id]);
  }
  return out;
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

/** FROM lines that name an external image (not an earlier stage). */
export function baseImages(dockerfile: string): string[] {
  const stages = new Set<string>();
  const bases: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (!m) continue;
    const [, from, as] = m;
    if (from && !stages.has(from.toLowerCase()) && from !== 'scratch') bases.push(from);
    if (as) stages.add(as.toLowerCase());
  }
  return [...new Set(bases)];
}

/** The build context as one tar stream: the snapshot taken, or the folder, then each extra under its name. */
function contextStream(job: BuildJob): NodeJS.ReadableStream {
  if (job.contextTar) return Readable.from([job.contextTar]);
  return folderStream(job) as unknown as NodeJS.ReadableStream;
}

function folderStream(job: BuildJob): Pack {
  const steps: ((p: Pack) => void)[] = [];
  for (const [name, hostPath] of Object.entries(job.extra)) {
    steps.push((p) => {
      const isDir = statSync(hostPath).isDirectory();
      const dir = isDir ? hostPath : path.dirname(hostPath);
      pack(dir, {
        pack: p,
        finalize: false,
        finish: next,
        ...(isDir ? {} : { entries: [path.basename(hostPath)] }),
        map: (header) => {
          header.name = isDir ? `${name}/${header.name}` : name;
          return header;
        },
      });
    });
  }
  if (job.dockerfile) {
    const { name, text } = job.dockerfile;
    steps.push((p) => p.entry({ name }, text, () => next(p)));
  }
  let i = 0;
  function next(p: Pack): void {
    const step = steps[i++];
    if (step) step(p);
    else p.finalize();
  }
  return pack(job.contextDir, { finalize: false, finish: next });
}

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

async function build(docker: Docker, job: BuildJob, inputsHash: string, opts: EnsureImageOptions): Promise<void> {
  const tty = opts.progress?.isTTY === true;
  const tail: string[] = [];
  const started = Date.now();
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(contextStream(job), {
      t: job.tag,
      labels: { ...job.labels, [LABEL.inputsHash]: inputsHash },
      rm: true,
      forcerm: true,
      pull: false,
      ...(job.dockerfile ? { dockerfile: job.dockerfile.name } : {}),
    });
  } catch (err) {
    throw buildError(job, errorText(err), tail, err);
  }
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, events: BuildEvent[]) => {
        if (tty) opts.progress?.write('\n');
        const failed = events.find((e) => e.error);
        if (err) reject(buildError(job, err.message, tail, err));
        else if (failed) reject(buildError(job, failed.errorDetail?.message ?? failed.error ?? 'unknown error', tail));
        else resolve();
      },
      (event: BuildEvent) => {
        const text = (event.stream ?? event.status ?? '').trimEnd();
        if (!text) return;
        // The engine colours build stderr; the tail is read in logs and JSON, not a terminal.
        for (const line of text.replace(ANSI_COLOUR, '').split('\n')) {
          tail.push(line);
          if (tail.length > 30) tail.shift();
        }
        const step = /^Step \d+\/\d+ : .*/.exec(text);
        if (step && tty) {
          const secs = ((Date.now() - started) / 1000).toFixed(1);
          opts.progress?.write(`\r\x1b[K${job.title} [${secs}s] ${step[0].slice(0, 100)}`);
        } else if (step) {
          opts.log.debug({ image: job.tag }, step[0]);
        }
      },
    );
  });
}

function buildError(job: BuildJob, reason: string, tail: string[], cause?: unknown): LogoMeshError {
  return new LogoMeshError(
    'LM_IMAGE_BUILD',
    `building ${job.tag} from ${job.contextDir} failed: ${reason}${tail.length ? `\n--- last build output ---\n${tail.join('\n')}` : ''}`,
    { file: path.join(job.contextDir, job.dockerfile?.name ?? 'Dockerfile'), image: job.tag, reason, tail },
    { cause },
  );
}
