#!/usr/bin/env node
// The installed command. It loads the CLI as `npm run build` bundles it (dist/cli-bundle/:
// a few modules loaded on demand instead of about 150, which halves the start of a
// command), or the compiled modules (dist/cli/) where there is no bundle.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const bundled = new URL('../dist/cli-bundle/entry.js', import.meta.url);
await import(existsSync(bundled) ? bundled.href : '../dist/cli/entry.js');
