import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pack } from 'tar-fs';
import { LogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';
import type { Logger } from '../log.js';
import type { RuntimeImage } from '../runtimes/runtime.js';
import { engineStatus, errorText, type Docker } from './docker.js';

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

/** One build per tag at a time in this process; concurrent callers share it. */
const inFlight = new Map<string, Promise<EnsuredImage>>();

/**
 * Build a runtime image unless one with the same inputs exists. The inputs are every file
 * of the build context and the id of each base image, hashed into a label, so an edit to
 * the Dockerfile or the SDK, or a rebuilt base image, triggers a rebuild and nothing else does.
 */
export function ensureRuntimeImage(docker: Docker, image: RuntimeImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  let p = inFlight.get(image.tag);
  if (!p) {
    p = ensure(docker, image, opts).finally(() => inFlight.delete(image.tag));
    inFlight.set(image.tag, p);
  }
  return p;
}

async function ensure(docker: Docker, image: RuntimeImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  const inputsHash = await contextHash(docker, image.contextDir);
  const existing = await inspectImage(docker, image.tag);
  if (existing && existing.Config?.Labels?.[LABEL.inputsHash] === inputsHash) {
    return { tag: image.tag, id: existing.Id, built: false, inputsHash };
  }
  opts.log.info({ image: image.tag, inputsHash }, 'building runtime image');
  const started = Date.now();
  await build(docker, image, inputsHash, opts);
  const built = await inspectImage(docker, image.tag);
  if (!built) throw new LogoMeshError('LM_IMAGE_BUILD', `image ${image.tag} is missing after its build`, { image: image.tag });
  opts.log.info({ image: image.tag, ms: Date.now() - started }, 'runtime image built');
  return { tag: image.tag, id: built.Id, built: true, inputsHash };
}

async function inspectImage(docker: Docker, tag: string) {
  try {
    return await docker.getImage(tag).inspect();
  } catch (err) {
    if (engineStatus(err) === 404) return undefined;
    throw err;
  }
}

/** sha256 over the relative path and bytes of every context file, and the base images' ids. */
export async function contextHash(docker: Docker, contextDir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const rel of listFiles(contextDir)) {
    hash.update(`${rel}\0`);
    hash.update(readFileSync(path.join(contextDir, rel)));
    hash.update('\0');
  }
  for (const base of baseImages(readFileSync(path.join(contextDir, 'Dockerfile'), 'utf8'))) {
    const found = await inspectImage(docker, base);
    if (!found) {
      throw new LogoMeshError('LM_IMAGE_BUILD', `base image ${base} of ${contextDir}/Dockerfile is not on this engine; run 'npm run provision'`, {
        file: path.join(contextDir, 'Dockerfile'),
        expected: `image ${base}`,
        found: 'nothing',
      });
    }
    hash.update(`${base}=${found.Id}\0`);
  }
  return hash.digest('hex');
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

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

async function build(docker: Docker, image: RuntimeImage, inputsHash: string, opts: EnsureImageOptions): Promise<void> {
  const tty = opts.progress?.isTTY === true;
  const tail: string[] = [];
  const started = Date.now();
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(pack(image.contextDir) as unknown as NodeJS.ReadableStream, {
      t: image.tag,
      labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'runtime-image', [LABEL.inputsHash]: inputsHash },
      rm: true,
      forcerm: true,
      pull: false,
    });
  } catch (err) {
    throw buildError(image, errorText(err), tail, err);
  }
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, events: BuildEvent[]) => {
        if (tty) opts.progress?.write('\n');
        const failed = events.find((e) => e.error);
        if (err) reject(buildError(image, err.message, tail, err));
        else if (failed) reject(buildError(image, failed.errorDetail?.message ?? failed.error ?? 'unknown error', tail));
        else resolve();
      },
      (event: BuildEvent) => {
        const text = (event.stream ?? event.status ?? '').trimEnd();
        if (!text) return;
        for (const line of text.split('\n')) {
          tail.push(line);
          if (tail.length > 30) tail.shift();
        }
        const step = /^Step \d+\/\d+ : .*/.exec(text);
        if (step && tty) {
          const secs = ((Date.now() - started) / 1000).toFixed(1);
          opts.progress?.write(`\r\x1b[K${image.runtime} image [${secs}s] ${step[0].slice(0, 100)}`);
        } else if (step) {
          opts.log.debug({ image: image.tag }, step[0]);
        }
      },
    );
  });
}

function buildError(image: RuntimeImage, reason: string, tail: string[], cause?: unknown): LogoMeshError {
  return new LogoMeshError(
    'LM_IMAGE_BUILD',
    `building ${image.tag} from ${image.contextDir} failed: ${reason}${tail.length ? `\n--- last build output ---\n${tail.join('\n')}` : ''}`,
    { file: path.join(image.contextDir, 'Dockerfile'), image: image.tag, reason, tail },
    { cause },
  );
}
