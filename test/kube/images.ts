import { spawnSync } from 'node:child_process';
import { connectEngine } from '../../src/engine/docker.js';
import { ensureImage, ensureRuntimeImage } from '../../src/images/build.js';
import { pluginFolderSha256, pluginImageRef } from '../../src/kubernetes/plugin-image.js';
import { silentLogger } from '../../src/log.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { EGRESS_IMAGE } from '../../src/sandbox/egress.js';

/**
 * The images the rendered objects name, made where the cluster can run them: built on the
 * local Docker engine with LogoMesh's own image code, then loaded into a kind cluster
 * (LOGOMESH_E2E_KIND=<cluster name>) or pushed to a registry the nodes pull from
 * (LOGOMESH_E2E_REGISTRY=<prefix>). Python plugins only: the probe is Python.
 */
export async function publishImages(loaded: readonly LoadedManifest[], registry: string): Promise<Record<string, string>> {
  const docker = await connectEngine();
  const runtime = await ensureRuntimeImage(docker, runtimeImage('python'), { log: silentLogger });
  const egress = await ensureImage(docker, EGRESS_IMAGE, { log: silentLogger });
  const refs: Record<string, string> = {};
  for (const l of loaded) {
    const ref = pluginImageRef(registry, l, pluginFolderSha256(l));
    // The plugin folder on top of its runtime's image, owned by root: the plugin cannot change its code.
    run('docker', ['build', '--quiet', '--tag', ref, '--file', '-', l.pluginDir], `FROM ${runtime.tag}\nCOPY . /plugin\n`);
    refs[l.manifest.id] = ref;
  }
  const egressRef = `${registry}/egress:latest`;
  run('docker', ['tag', egress.tag, egressRef]);
  const all = [...Object.values(refs), egressRef];
  const kind = process.env.LOGOMESH_E2E_KIND;
  if (kind) run('kind', ['load', 'docker-image', '--name', kind, ...all]);
  else for (const ref of all) run('docker', ['push', ref]);
  return refs;
}

function run(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 600_000 });
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}
