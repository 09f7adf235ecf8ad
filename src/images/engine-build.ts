import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { LABEL } from '../labels.js';
import { errorText, type Docker } from '../engine/docker.js';
import { contextStream } from './build-context.js';
import type { BuildJob, EnsureImageOptions } from './build-job.js';

// eslint-disable-next-line no-control-regex -- matching the escape character is the point
const ANSI_COLOUR = /\x1b\[[0-9;]*m/g;

/** Lines of build output kept for the error of a failed build. */
const TAIL_LINES = 30;

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * One build through the engine API, labelled with its inputs hash: intermediate containers
 * removed, never a pull. Progress goes to a terminal (or the debug log); a failure is
 * LM_IMAGE_BUILD with the last lines of the build's output.
 */
export async function runBuild(docker: Docker, job: BuildJob, inputsHash: string, opts: EnsureImageOptions): Promise<void> {
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
          if (tail.length > TAIL_LINES) tail.shift();
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
