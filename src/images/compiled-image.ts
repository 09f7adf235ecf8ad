import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { RuntimeImage } from '../runtimes/runtime.js';
import { errorText, type Docker } from '../engine/docker.js';
import type { EnsureImageOptions, EnsuredImage } from './build-job.js';
import { ensureCurrent, oncePerTag } from './current-image.js';
import { snapshotHash } from './inputs-hash.js';
import { snapshotDifferences, snapshotFolder, type FolderSnapshot } from './plugin-snapshot.js';
import { ensureRuntimeImage } from './runtime-image.js';

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
  const inputsHash = await snapshotHash(docker, snapshot.sha256, text, path.join(loaded.pluginDir, dockerfile.name));
  const repository = `logomesh/plugin-${id}${opts.variant ? `-${opts.variant}` : ''}`;
  const tag = `${repository}:${inputsHash.slice(0, 16)}`;
  const image = await oncePerTag(tag, () =>
    ensureCurrent(
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
