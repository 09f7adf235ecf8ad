// Turns a development node_modules into a production one, as `npm prune --omit=dev` would
// (npm is not in the image): package-lock.json marks every dev-only package "dev": true.
// Also drops .bin and every cache except the Node.js binary kept at argv[3] (relative to the
// root). Fails if a production package is missing, so a too-wide .dockerignore shows here.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const [root, keep] = process.argv.slice(2);
if (!root || !keep) throw new Error('usage: prune-dev.mjs <root> <node binary, relative to root>');
const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
const missing = [];
let removed = 0;
for (const [rel, info] of Object.entries(lock.packages ?? {})) {
  if (!rel.startsWith('node_modules/')) continue;
  const abs = path.join(root, rel);
  if (info.dev) {
    if (existsSync(abs)) removed++;
    rmSync(abs, { recursive: true, force: true });
  } else if (!info.optional && !info.devOptional && !existsSync(abs)) {
    missing.push(rel);
  }
}
rmSync(path.join(root, 'node_modules', '.bin'), { recursive: true, force: true });
const binary = path.join(root, keep);
const cache = path.join(root, 'node_modules', '.cache');
for (const entry of readdirSync(cache, { recursive: true, withFileTypes: true })) {
  const abs = path.join(entry.parentPath, entry.name);
  if (!entry.isDirectory() && abs !== binary) rmSync(abs, { force: true });
}
if (missing.length) {
  console.error(`prune-dev: production packages missing from the build context (is .dockerignore excluding them?):\n  ${missing.join('\n  ')}`);
  process.exit(1);
}
console.log(`prune-dev: removed ${removed} dev-only packages`);
