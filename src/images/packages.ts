import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LogoMeshError, isLogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest, Runtime } from '../manifest/types.js';
import { dependencyError, type DependencyProblem } from './dependency-issues.js';
import { engineStatus, type Docker } from '../engine/docker.js';
import { ensureGeneratedImage, type EnsuredImage, type EnsureImageOptions } from './build.js';

const run = promisify(execFile);

/** The keys of `dependencies.packages`. */
export type PackageKey = 'python' | 'npm' | 'go' | 'rust';
export type PackageManager = 'npm' | 'pip';

/** What an interpreted plugin asks to have installed, as LogoMesh will install it. */
export interface PackageRequest {
  readonly runtime: Runtime;
  readonly manager: PackageManager;
  /** The list's key in the manifest (`npm` or `python`). */
  readonly key: PackageKey;
  /** Sorted, duplicates removed: the same set always gives the same image. */
  readonly specs: readonly string[];
}

/** The package list each runtime installs from; go and rust install none. */
const INSTALLS: Readonly<Record<Runtime, { key: PackageKey; manager: PackageManager } | undefined>> = {
  node: { key: 'npm', manager: 'npm' },
  python: { key: 'python', manager: 'pip' },
  go: undefined,
  rust: undefined,
};

/** Why a compiled runtime takes no package list, in words that say what to do instead. */
const COMPILED_RULE: Readonly<Record<'go' | 'rust', string>> = {
  go:
    'no packages for a Go plugin: it is compiled offline (GOPATH mode, no module proxy) against the standard library, ' +
    "the LogoMesh SDK and gorilla/websocket; vendor other Go code into the plugin's vendor/ folder (go mod vendor)",
  rust:
    'no packages for a Rust plugin: it is compiled offline (crates.io is never reached) against the standard library, ' +
    'logomesh, serde and serde_json; put other code into the plugin folder as modules',
};

/**
 * An npm spec LogoMesh fetches: a registry name (optionally scoped) with an optional
 * version, range or tag. URLs, paths (`file:`), git and alias (`npm:`) specs are refused:
 * the fetch runs on the host, where such a spec could read the host's files or run git.
 */
const NPM_SPEC = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=*+_-]+)?$/i;

/** A PEP 508 name with optional extras and version clauses; no URLs, paths or markers. */
const PIP_SPEC = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?(?:(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+(?:,(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+)*)?$/;

/** The SDK's package name in the node image; a plugin cannot replace it. */
const NODE_SDK = 'logomesh';

/** The name part of an npm spec (`@scope/name@^1` -> `@scope/name`). */
export function npmName(spec: string): string {
  const at = spec.indexOf('@', 1);
  return at === -1 ? spec : spec.slice(0, at);
}

/**
 * The packages a plugin asks for, checked against what its runtime can install; undefined
 * when it asks for none. Every problem is reported at once as LM_PACKAGES_UNSUPPORTED: a
 * list for a compiled runtime, a list for another runtime's package manager, a spec that
 * is not a plain registry package.
 */
export function packageRequest(loaded: LoadedManifest): PackageRequest | undefined {
  const { runtime, dependencies } = loaded.manifest;
  const installs = INSTALLS[runtime];
  const problems: DependencyProblem[] = [];
  let specs: readonly string[] = [];
  for (const key of ['python', 'npm', 'go', 'rust'] as const) {
    const list = dependencies.packages[key] ?? [];
    if (list.length === 0) continue;
    const pointer = `/dependencies/packages/${key}`;
    if (installs?.key === key) {
      specs = list;
      list.forEach((spec, i) => {
        const problem = specProblem(installs.manager, spec);
        if (problem) problems.push({ path: `${pointer}/${i}`, expected: problem, found: JSON.stringify(spec) });
      });
    } else if (runtime === 'go' || runtime === 'rust') {
      problems.push({ path: pointer, expected: COMPILED_RULE[runtime], found: `${key} packages ${JSON.stringify(list)}` });
    } else {
      problems.push({
        path: pointer,
        expected: `packages for the ${runtime} runtime only, listed under dependencies.packages.${installs?.key ?? runtime}`,
        found: `${key} packages ${JSON.stringify(list)}`,
      });
    }
  }
  if (problems.length > 0) {
    throw dependencyError(loaded, 'LM_PACKAGES_UNSUPPORTED', `plugin ${loaded.manifest.id}: dependencies.packages lists what the ${runtime} runtime cannot install`, problems, {
      runtime,
    });
  }
  if (!installs || specs.length === 0) return undefined;
  return { runtime, manager: installs.manager, key: installs.key, specs: [...new Set(specs)].sort() };
}

function specProblem(manager: PackageManager, spec: string): string | undefined {
  if (manager === 'npm') {
    if (!NPM_SPEC.test(spec)) {
      return 'an npm registry package: name, name@version, name@range or @scope/name@range (URL, file:, git and npm: alias specs are not fetched)';
    }
    if (npmName(spec) === NODE_SDK) return `a package other than '${NODE_SDK}', which the node image provides`;
    return undefined;
  }
  if (!PIP_SPEC.test(spec)) {
    return 'a package from the Python package index: name, name[extras] or name with version clauses such as numpy==1.26.4 (URLs, paths and markers are not installed)';
  }
  return undefined;
}

/** Where pip installs a plugin's Python packages in its image; a .pth file puts it on sys.path. */
export const PYDEPS_DIR = '/opt/logomesh/pydeps';
export const PYDEPS_PTH = 'logomesh-pydeps.pth';
/** Debian's site folder, where the runtime image's own logomesh.pth is. */
const PYTHON_SITE_DIR = '/usr/lib/python3/dist-packages';
/** Bumped whenever the generated Dockerfiles change meaning, so older images are not reused. */
const GENERATION = 1;

/** The environment variable that points pip at another package index (a mirror). */
export const PIP_INDEX_ENV = 'LOGOMESH_PIP_INDEX_URL';
export const DEFAULT_PIP_INDEX = 'https://pypi.org/simple';

/**
 * A node plugin's packages image: the runtime image with `node_modules/` (fetched on the
 * host) copied to /node_modules, the last folder Node's lookup from /plugin tries, next to
 * the SDK's link there. A plugin's own node_modules still comes first.
 */
export function npmDockerfile(base: string): string {
  return [
    '# Generated by LogoMesh: the node runtime image with the packages of dependencies.packages.npm,',
    '# fetched on the host (npm install --ignore-scripts) into node_modules/ of this build context.',
    `FROM ${base}`,
    'COPY node_modules/ /node_modules/',
    '',
  ].join('\n');
}

/**
 * A python plugin's packages image: pip (Debian's python3-pip, in a build stage that the
 * plugin image does not keep) installs the specs into PYDEPS_DIR as the plugin user; the
 * result and a .pth file naming it are copied onto the runtime image. The exec form passes
 * every spec as one argument, with no shell in between.
 */
export function pipDockerfile(base: string, specs: readonly string[], indexUrl?: string): string {
  const index: string[] = [];
  if (indexUrl) {
    index.push('--index-url', indexUrl);
    // An http mirror is the operator's explicit choice; pip refuses it otherwise.
    if (/^http:\/\//i.test(indexUrl)) index.push('--trusted-host', new URL(indexUrl).hostname);
  }
  const pip = ['python3', '-m', 'pip', 'install', '--no-cache-dir', '--disable-pip-version-check', '--no-input', '--retries', '2', '--timeout', '15', ...index, '--target', PYDEPS_DIR, '--', ...specs];
  return [
    '# Generated by LogoMesh: the python runtime image with the packages of dependencies.packages.python,',
    "# installed by pip (Debian's python3-pip) in a build stage; only the installed files are kept.",
    `FROM ${base} AS build`,
    `LABEL ${LABEL.owner}=${OWNER} ${LABEL.role}=deps-build`,
    'USER root',
    'RUN apt-get update \\',
    ' && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip \\',
    ' && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \\',
    ` && mkdir -p ${PYDEPS_DIR} && chown 10001:10001 ${PYDEPS_DIR}`,
    'USER 10001:10001',
    `RUN ${JSON.stringify(pip)}`,
    `FROM ${base}`,
    // Owned by root in the plugin image: readable, not writable, by the plugin user.
    `COPY --chown=0:0 --from=build ${PYDEPS_DIR} ${PYDEPS_DIR}`,
    `COPY ${PYDEPS_PTH} ${PYTHON_SITE_DIR}/${PYDEPS_PTH}`,
    '',
  ].join('\n');
}

/** The generated Dockerfile for a request, FROM the runtime image `base`. */
export function packagesDockerfile(request: PackageRequest, base: string, env: NodeJS.ProcessEnv = process.env): string {
  return request.manager === 'npm' ? npmDockerfile(base) : pipDockerfile(base, request.specs, env[PIP_INDEX_ENV] || undefined);
}

/**
 * The cache key of a packages image: the runtime image's id, the sorted list and the
 * generated Dockerfile. The same list on the same runtime image is built once; a rebuilt
 * runtime image, another list or another Dockerfile gives another image.
 */
export function packagesImageHash(baseImageId: string, request: PackageRequest, dockerfile: string): string {
  return createHash('sha256')
    .update(JSON.stringify({ generation: GENERATION, runtime: request.runtime, manager: request.manager, base: baseImageId, specs: request.specs, dockerfile }))
    .digest('hex');
}

export function packagesImageTag(runtime: Runtime, hash: string): string {
  return `logomesh/deps-${runtime}:${hash.slice(0, 16)}`;
}

/** One fetch and build per tag at a time in this process. */
const inFlight = new Map<string, Promise<EnsuredImage>>();

/**
 * The plugin's packages image, built FROM the runtime image `base` unless one with the
 * same key exists (then nothing is fetched or built). npm packages are fetched on the host;
 * pip runs in the build.
 */
export function ensurePackagesImage(docker: Docker, loaded: LoadedManifest, request: PackageRequest, base: EnsuredImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  const dockerfile = packagesDockerfile(request, base.tag);
  const hash = packagesImageHash(base.id, request, dockerfile);
  const tag = packagesImageTag(request.runtime, hash);
  let p = inFlight.get(tag);
  if (!p) {
    p = buildPackagesImage(docker, loaded, request, { tag, hash, dockerfile }, opts).finally(() => inFlight.delete(tag));
    inFlight.set(tag, p);
  }
  return p;
}

async function buildPackagesImage(
  docker: Docker,
  loaded: LoadedManifest,
  request: PackageRequest,
  image: { tag: string; hash: string; dockerfile: string },
  opts: EnsureImageOptions,
): Promise<EnsuredImage> {
  const { tag, hash } = image;
  const existing = await docker
    .getImage(tag)
    .inspect()
    .catch((err: unknown) => {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    });
  if (existing?.Config?.Labels?.[LABEL.inputsHash] === hash) return { tag, id: existing.Id, built: false, inputsHash: hash };

  const context = mkdtempSync(path.join(os.tmpdir(), `logomesh-deps-${request.runtime}-`));
  try {
    writeFileSync(path.join(context, 'Dockerfile'), image.dockerfile);
    if (request.manager === 'npm') await fetchNpm(loaded, request.specs, context, opts.log);
    else writeFileSync(path.join(context, PYDEPS_PTH), `${PYDEPS_DIR}\n`);
    opts.log.info({ plugin: loaded.manifest.id, image: tag, packages: request.specs }, `building the ${request.runtime} packages image`);
    return await ensureGeneratedImage(
      docker,
      { tag, contextDir: context, labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'deps-image' }, title: `${request.key} packages of ${loaded.manifest.id}` },
      hash,
      opts,
    );
  } catch (err) {
    throw request.manager === 'pip' ? explainPipFailure(err, loaded, request, process.env[PIP_INDEX_ENV] || DEFAULT_PIP_INDEX) : err;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/**
 * `npm install` on the host into the build context: containers here cannot verify the
 * registry's certificate, the host can (its CA settings are in the environment npm gets).
 * Install scripts never run: they would run on the host. Options end at `--`, and every
 * spec is one argument.
 */
async function fetchNpm(loaded: LoadedManifest, specs: readonly string[], context: string, log: Logger): Promise<void> {
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
