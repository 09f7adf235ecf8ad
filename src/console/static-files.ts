import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_DIR } from '../paths.js';

/** The page's own files (src/console/web/, shipped as they are: plain ES modules, no build step). */
export const WEB_DIR = path.join(REPO_DIR, 'src', 'console', 'web');

const require = createRequire(import.meta.url);
/** A package's folder, found from its main entry: not every package exports its package.json. */
function pkg(name: string): string {
  let dir = path.dirname(require.resolve(name));
  while (!existsSync(path.join(dir, 'package.json')) || (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== name) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`package ${name} not found`);
    dir = up;
  }
  return dir;
}

/** The libraries the page imports, served from the package's own node_modules: no CDN. */
const VENDOR: Record<string, () => string> = {
  '/vendor/preact.mjs': () => path.join(pkg('preact'), 'dist', 'preact.mjs'),
  '/vendor/hooks.mjs': () => path.join(pkg('preact'), 'hooks', 'dist', 'hooks.mjs'),
  '/vendor/htm.mjs': () => path.join(pkg('htm'), 'dist', 'htm.mjs'),
  '/vendor/uPlot.esm.js': () => path.join(pkg('uplot'), 'dist', 'uPlot.esm.js'),
  '/vendor/uPlot.min.css': () => path.join(pkg('uplot'), 'dist', 'uPlot.min.css'),
};

const PAGE: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/views.js': 'views.js',
  '/html.js': 'html.js',
  '/charts.js': 'charts.js',
  '/api.js': 'api.js',
  '/style.css': 'style.css',
};

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

export interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

/**
 * Every file the page needs, read once when the console starts (a missing one fails the
 * start, not a page load). The import map inside index.html is the one inline script; its
 * hash goes into the Content-Security-Policy, so no other inline script can run.
 */
export function loadStaticFiles(): { files: Map<string, StaticFile>; csp: string } {
  const files = new Map<string, StaticFile>();
  const add = (url: string, file: string) => files.set(url, { body: readFileSync(file), type: TYPES[path.extname(file)] ?? 'application/octet-stream' });
  for (const [url, name] of Object.entries(PAGE)) add(url, path.join(WEB_DIR, name));
  for (const [url, where] of Object.entries(VENDOR)) add(url, where());
  const html = files.get('/index.html')!.body.toString('utf8');
  const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
  const hash = createHash('sha256').update(map).digest('base64');
  const csp = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { files, csp };
}
