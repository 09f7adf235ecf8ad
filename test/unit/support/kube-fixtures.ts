import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadManifest } from '../../../src/manifest/index.js';
import type { LoadedManifest } from '../../../src/manifest/types.js';
import { loadPolicy, NO_POLICY, type Policy } from '../../../src/policy/policy.js';
import { renderInstallation, type KubeObject } from '../../../src/kubernetes/render.js';
import { kubeTarget, type KubeTarget } from '../../../src/kubernetes/target.js';

/**
 * Plugin folders covering what the Kubernetes render must translate: no capabilities, hosts
 * (a wildcard, two ports, a duplicate), isolation level 3, an extra system call, read and
 * write grants, and the interpreted and compiled runtimes.
 */
export const PLUGINS: Readonly<Record<string, { files: Record<string, string>; manifest: string }>> = {
  plain: { files: { 'main.py': 'print(1)\n' }, manifest: 'runtime: python\nentrypoint: main.py\n' },
  fetcher: {
    files: { 'main.mjs': '\n' },
    manifest: [
      'runtime: node',
      'entrypoint: main.mjs',
      'capabilities:',
      '  - id: net',
      '    scope: network',
      "    hosts: ['api.example.com:443', '*.cdn.example.org:443', 'files.example.net:8080', 'api.example.com:443']",
      'resources: { maxMemoryMB: 96, maxCpuPercent: 150, maxNetworkConnections: 7 }',
      '',
    ].join('\n'),
  },
  vault: { files: { 'main.py': '\n' }, manifest: 'runtime: python\nentrypoint: main.py\nsecurity: { isolationLevel: 3 }\n' },
  tracer: { files: { 'main.go': 'package main\nfunc main() {}\n', 'go.mod': 'module tracer\n' }, manifest: 'runtime: go\nentrypoint: main.go\nsecurity: { syscalls: [perf_event_open] }\n' },
  writer: {
    files: { 'main.py': '\n', 'data/rows.csv': 'a\n', 'state/.keep': '' },
    manifest: [
      'runtime: python',
      'entrypoint: main.py',
      'capabilities:',
      '  - { id: in, scope: filesystem, permissions: [read], paths: ["./data/**"] }',
      '  - { id: out, scope: filesystem, permissions: [read, write], paths: ["./state/**"] }',
      'resources: { maxTmpMB: 24 }',
      '',
    ].join('\n'),
  },
};

/** The policy the fixtures need: the tracer's extra system call allowed. */
export const POLICY_TEXT = 'capabilities:\n  allowedSyscalls: [perf_event_open]\n';

export class KubeFixtures {
  readonly root = mkdtempSync(path.join(os.tmpdir(), 'logomesh-kube-'));
  private n = 0;

  /** A folder of plugin folders, each written from PLUGINS (or `extra`, by id). */
  folder(ids: readonly string[] = Object.keys(PLUGINS), extra: Record<string, { files: Record<string, string>; manifest: string }> = {}): string {
    const dir = path.join(this.root, `set-${++this.n}`);
    for (const id of ids) {
      const p = extra[id] ?? PLUGINS[id]!;
      const pd = path.join(dir, id);
      for (const [rel, text] of Object.entries(p.files)) {
        mkdirSync(path.dirname(path.join(pd, rel)), { recursive: true });
        writeFileSync(path.join(pd, rel), text);
      }
      writeFileSync(path.join(pd, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\n${p.manifest}`);
    }
    return dir;
  }

  policy(text: string = POLICY_TEXT): { file: string; policy: Policy } {
    const file = path.join(this.root, `policy-${++this.n}.yaml`);
    writeFileSync(file, text);
    return { file, policy: loadPolicy(file) };
  }

  load(ids: readonly string[] = Object.keys(PLUGINS), extra: Record<string, { files: Record<string, string>; manifest: string }> = {}): LoadedManifest[] {
    const dir = this.folder(ids, extra);
    return ids.map((id) => loadManifest(path.join(dir, id)));
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export const TARGET: KubeTarget = kubeTarget({ namespace: 'lm-test' });

/** Render loaded plugins with placeholder images. */
export function render(loaded: readonly LoadedManifest[], policy: Policy = NO_POLICY, target: KubeTarget = TARGET): KubeObject[] {
  const images = Object.fromEntries(loaded.map((l) => [l.manifest.id, `registry.test/plugin-${l.manifest.id}:1`]));
  return renderInstallation({ loaded, policy, target, images });
}

// Loose views of rendered objects for assertions: the render's own types are kubernetes-models'.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type Obj = any;

export function find(objects: readonly KubeObject[], kind: string, name: string): Obj {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in ${objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o;
}

export function all(objects: readonly KubeObject[], kind: string): Obj[] {
  return objects.filter((x) => x.kind === kind);
}
