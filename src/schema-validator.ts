import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Options, ValidateFunction } from 'ajv';
import { loadCachedBundle } from './code-cache.js';

const require = createRequire(import.meta.url);

/**
 * An ajv validator for a JSON Schema, compiled once per schema, not once per process. Loading
 * ajv and compiling the manifest schema took about 190 ms of every `logomesh run`, `up` and
 * `validate`; ajv's standalone code for it (the same validation, as plain JavaScript) is
 * written to `cacheDir` (paths.ts's CACHE_DIR) the first time and loaded from then on, without ajv. The file name
 * carries a hash of the schema, the options and ajv's version, so a change of any of them
 * compiles again. Where the cache cannot be written (a read-only install), every process
 * compiles, as before. The standalone code is loaded with V8's code cache (`<file>.v8-cache`,
 * written by the first process that finds none), as `logomesh run`'s bundle is.
 */
export function schemaValidator(name: string, schema: object, options: Options, cacheDir: string): ValidateFunction {
  const ajvVersion = (require('ajv/package.json') as { version: string }).version;
  const key = createHash('sha256').update(JSON.stringify([schema, options, ajvVersion])).digest('hex').slice(0, 16);
  const file = path.join(cacheDir, `${name}-validator-${key}.cjs`);
  try {
    // With V8's code cache beside it (code-cache.ts): the manifest's standalone code is 160 KB,
    // and compiling it (and its validate function at the first call) took 4-8 ms of each run.
    return loadCachedBundle<ValidateFunction>(file);
  } catch {
    // Not compiled yet (or unreadable): compiled now.
  }
  const { Ajv } = require('ajv') as typeof import('ajv');
  const ajv = new Ajv({ ...options, code: { ...options.code, source: true } });
  const validate = ajv.compile(schema);
  try {
    const standalone = (require('ajv/dist/standalone') as { default: (ajv: import('ajv').Ajv, v: ValidateFunction) => string }).default;
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, standalone(ajv, validate));
    renameSync(tmp, file);
  } catch {
    // No cache: the next process compiles too.
  }
  return validate;
}
