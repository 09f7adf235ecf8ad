import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import { NODE_SDK } from './package-request.js';

const run = promisify(execFile);

/**
 * `npm install` on the host into the build context: containers here cannot verify the
 * registry's certificate, the host can (its CA settings are in the environment npm gets).
 * Install scripts never run: they would run on the host. Options end at `--`, and every
 * spec is one argument.
 */
export async function fetchNpm(loaded: LoadedManifest, specs: readonly string[], context: string, log: Logger): Promise<void> {
  const args = ['install', '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=dev', '--prefix', context, '--', ...specs];
  const started = Date.now();
  try {
    await run('npm', args, { cwd: context, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 });
  } catch (err) {
    const reason = commandError(err);
    throw new LogoMeshError('LM_IMAGE_BUILD', `cannot fetch the npm packages of plugin ${loaded.manifest.id} (${specs.join(', ')}) with 'npm install' on this host: ${reason}`, {
      plugin: loaded.manifest.id,
      file: loaded.file,
      path: '/dependencies/packages/npm',
      reason,
    });
  }
  const modules = path.join(context, 'node_modules');
  if (!existsSync(modules)) {
    throw new LogoMeshError('LM_IMAGE_BUILD', `'npm install' of ${specs.join(', ')} for plugin ${loaded.manifest.id} installed nothing`, { plugin: loaded.manifest.id, file: loaded.file });
  }
  if (existsSync(path.join(modules, NODE_SDK))) {
    throw new LogoMeshError('LM_PACKAGES_UNSUPPORTED', `the npm packages of plugin ${loaded.manifest.id} bring a package named '${NODE_SDK}', which would replace the LogoMesh SDK in the node image`, {
      plugin: loaded.manifest.id,
      file: loaded.file,
      path: '/dependencies/packages/npm',
    });
  }
  // The image copies these as root with their modes: readable by all, writable by none.
  normaliseModes(modules);
  log.info({ plugin: loaded.manifest.id, packages: specs, ms: Date.now() - started }, 'npm packages fetched on the host');
}

function normaliseModes(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir)) {
    const at = path.join(dir, entry);
    const st = lstatSync(at);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) normaliseModes(at);
    else chmodSync(at, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

function commandError(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  const lines = (e.stderr?.trim() || e.message || String(err)).split('\n').filter((l) => !/npm warn/i.test(l));
  return lines.slice(-8).join('\n');
}
