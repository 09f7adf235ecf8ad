import path from 'node:path';
import { statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pack, type Pack } from 'tar-fs';
import type { BuildJob } from './build-job.js';

/** The build context as one tar stream: the snapshot taken, or the folder, then each extra under its name. */
export function contextStream(job: BuildJob): NodeJS.ReadableStream {
  if (job.contextTar) return Readable.from([job.contextTar]);
  return folderStream(job) as unknown as NodeJS.ReadableStream;
}

/** The context folder packed, then each extra (a folder or one file) under its name, then the generated Dockerfile. */
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
