import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** An entry of a plugin folder: file text, a folder, or a symlink. */
export type Entry = string | { readonly kind: 'dir' } | { readonly kind: 'symlink'; readonly target: string };
/** Plugin-relative paths (`data/rows.csv`) to entries; parent folders are created as needed. */
export type Tree = Readonly<Record<string, Entry>>;

export const folder: Entry = { kind: 'dir' };
/** A symlink; a relative `target` is resolved from the link's own folder, as the kernel does. */
export const symlink = (target: string): Entry => ({ kind: 'symlink', target });

/** A minimal entrypoint most plugins in these tests share. */
export const MAIN_PY = 'print("hello")\n';

/**
 * Temp plugin folders for one test file. Each `create` makes a fresh root holding
 * `plugin/` (built from the tree) and `outside/` (files a plugin must never reach:
 * `outside/secret.txt`, `outside/evil.py`). Call `removeAll` in afterAll.
 */
export class PluginFolders {
  private readonly roots: string[] = [];

  create(tree: Tree): string {
    const root = mkdtempSync(path.join(os.tmpdir(), 'logomesh-unit-'));
    this.roots.push(root);
    write(path.join(root, 'outside'), { 'secret.txt': 'host secret\n', 'evil.py': 'print("escaped")\n' });
    const pluginDir = path.join(root, 'plugin');
    mkdirSync(pluginDir);
    write(pluginDir, tree);
    return pluginDir;
  }

  removeAll(): void {
    for (const root of this.roots.splice(0)) rmSync(root, { recursive: true, force: true });
  }
}

function write(dir: string, tree: Tree): void {
  for (const [rel, entry] of Object.entries(tree)) {
    const at = path.join(dir, rel);
    mkdirSync(path.dirname(at), { recursive: true });
    if (typeof entry === 'string') writeFileSync(at, entry);
    else if (entry.kind === 'dir') mkdirSync(at, { recursive: true });
    else symlinkSync(entry.target, at);
  }
}

/** Strip the common indentation of a template literal so manifests can be written inline. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\n[ \t]*$/, '\n').split('\n');
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0);
  const cut = indents.length > 0 ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}
