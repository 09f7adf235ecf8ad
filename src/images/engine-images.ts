import { LogoMeshError } from '../errors.js';
import { engineStatus, type Docker } from '../engine/docker.js';

/** The image a tag or id names on this engine, or undefined when there is none (404). */
export async function inspectImage(docker: Docker, tag: string) {
  try {
    return await docker.getImage(tag).inspect();
  } catch (err) {
    if (engineStatus(err) === 404) return undefined;
    throw err;
  }
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

/** The id of every base image the Dockerfile builds FROM. Throws LM_IMAGE_BUILD for one not on the engine. */
export async function baseImageIds(docker: Docker, dockerfileText: string, file: string): Promise<[string, string][]> {
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
