import { LogoMeshError, isLogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { PackageRequest } from './package-request.js';
import { PIP_INDEX_ENV } from './packages-dockerfile.js';

/** Lines of pip's output that mean it could not reach the index. */
const UNREACHABLE =
  /Could not fetch URL|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|NewConnectionError|ConnectTimeout|Connection timed out|Network is unreachable|Max retries exceeded|SSLError|CERTIFICATE_VERIFY_FAILED|ProxyError/i;

/**
 * A failed pip build, said plainly: when pip's output shows it could not reach the index,
 * the message names the index and what to do, and keeps the build's last lines.
 */
export function explainPipFailure(err: unknown, loaded: LoadedManifest, request: PackageRequest, index: string): unknown {
  if (!isLogoMeshError(err) || err.code !== 'LM_IMAGE_BUILD') return err;
  const tail = Array.isArray(err.details.tail) ? (err.details.tail as string[]) : [];
  if (!tail.some((l) => UNREACHABLE.test(l))) return err;
  // From the pip step on: the package installation before it is noise here.
  const step = tail.findLastIndex((l) => /^Step \d+\/\d+ : RUN \["python3","-m","pip"/.test(l));
  const shown = (step >= 0 ? tail.slice(step) : tail).filter((l) => l.trim() !== '');
  return new LogoMeshError(
    'LM_IMAGE_BUILD',
    `cannot install the Python packages of plugin ${loaded.manifest.id} (${request.specs.join(', ')}): pip in the image build could not reach the package index ${index}. ` +
      `Set ${PIP_INDEX_ENV} to an index the engine's build containers can reach, or remove dependencies.packages.python and use the standard library or Debian's python3-* packages.` +
      `\n--- pip's output ---\n${shown.join('\n')}`,
    { ...err.details, plugin: loaded.manifest.id, file: loaded.file, path: '/dependencies/packages/python', index, reason: `package index ${index} unreachable` },
    { cause: err },
  );
}
