import { closeSync, fstatSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Script } from 'node:vm';

/**
 * Loading a CommonJS bundle with V8's code cache beside it (`<bundle>.v8-cache`): the
 * bytecode of every function the last run compiled, so a command does not parse and compile
 * its modules again in each process (Node.js 20 has no module.enableCompileCache). The cache
 * is written once, by the first process that finds none or finds it stale, when it exits.
 *
 * V8 checks a cache against its source by length only, so each cache starts with a key line
 * naming the bundle's size, modification time and inode and the Node.js version and
 * architecture: a rebuilt bundle, or another Node.js, never runs bytecode of another source.
 * The cache sits beside the bundle with the same owner: whoever can change it could change the
 * bundle itself. Where it cannot be written (a read-only install), every process compiles,
 * as without it.
 */
export function loadCachedBundle<T>(bundle: string): T {
  const fd = openSync(bundle, 'r');
  let source: string;
  let key: string;
  try {
    const st = fstatSync(fd);
    // Read through the descriptor the key was taken from: the key names exactly this source.
    source = readFileSync(fd, 'utf8');
    key = `logomesh-code-cache 1 ${st.size} ${st.mtimeMs} ${st.ino} ${process.version} ${process.arch}\n`;
  } finally {
    closeSync(fd);
  }
  const cacheFile = `${bundle}.v8-cache`;
  const cachedData = readCache(cacheFile, key);
  // The wrapper CommonJS gives a module, so that the bundle's own lines keep their numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  });
  if (!cachedData || script.cachedDataRejected) process.once('exit', () => writeCache(cacheFile, key, script));
  const module = { exports: {} as T };
  const fn = script.runInThisContext() as (e: T, r: NodeJS.Require, m: { exports: T }, f: string, d: string) => void;
  fn(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  return module.exports;
}

/** The cache's bytes when its key line is `key`; undefined when there is none or it is another's. */
function readCache(file: string, key: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return undefined;
  }
  const head = Buffer.from(key);
  return data.length > head.length && data.subarray(0, head.length).equals(head) ? data.subarray(head.length) : undefined;
}

/** At exit, with everything this run compiled: written to a file of its own, then renamed over the old one. */
function writeCache(file: string, key: string, script: Script): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, Buffer.concat([Buffer.from(key), script.createCachedData()]), { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    // A read-only install: no cache, each run compiles.
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
  }
}
