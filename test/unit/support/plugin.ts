import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A plugin folder with `manifest` as plugin.yaml and an empty main.py; removed after the file's tests. */
export function writePlugin(manifest: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-monitor-'));
  roots.push(dir);
  writeFileSync(path.join(dir, 'plugin.yaml'), manifest);
  writeFileSync(path.join(dir, 'main.py'), '');
  return dir;
}
