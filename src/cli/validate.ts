import { statSync } from 'node:fs';
import { crossCheckManifests, findManifest, formatIssue, isLogoMeshError, loadManifest, ManifestRejectedError, pluginFolders, type LoadedManifest, type ManifestIssue } from '../index.js';
import type { CliIo } from './io.js';

interface Outcome {
  target: string;
  file?: string;
  ok: boolean;
  id?: string;
  version?: string;
  runtime?: string;
  issues: ManifestIssue[];
}

/**
 * `logomesh validate <manifest-or-dir>...`: every error of every file, then one exit code. A
 * folder of plugin folders counts as its plugins; everything named is then checked as one
 * set too (crossCheck: dependencies, consumed methods the target exposes).
 */
export function validateCommand(targets: string[], json: boolean, io: CliIo): number {
  const loaded = new Map<Outcome, LoadedManifest>();
  const outcomes = targets.flatMap(expand).map((t) => check(t, loaded));
  const files = new Map([...loaded].map(([o, l]) => [l.file, o]));
  for (const issue of crossCheckManifests([...loaded.values()])) {
    const o = files.get(issue.file)!;
    o.ok = false;
    o.issues.push(issue);
  }
  if (json) {
    io.out(JSON.stringify(outcomes, null, 2));
  } else {
    for (const o of outcomes) {
      if (o.ok) io.out(`ok   ${o.file} (${o.id}@${o.version}, ${o.runtime})`);
      else for (const issue of o.issues) io.err(formatIssue(issue));
    }
    const bad = outcomes.filter((o) => !o.ok);
    if (bad.length) io.err(`${bad.length} of ${outcomes.length} manifest(s) rejected, ${bad.reduce((n, o) => n + o.issues.length, 0)} error(s)`);
  }
  return outcomes.every((o) => o.ok) ? 0 : 1;
}

/** A folder without a manifest of its own stands for the plugin folders in it. */
function expand(target: string): string[] {
  if (!statSync(target, { throwIfNoEntry: false })?.isDirectory()) return [target];
  try {
    findManifest(target);
    return [target];
  } catch {
    try {
      return pluginFolders(target);
    } catch {
      return [target]; // reported by check, as for any folder without a manifest
    }
  }
}

function check(target: string, loaded: Map<Outcome, LoadedManifest>): Outcome {
  try {
    const l = loadManifest(target);
    const { manifest, file } = l;
    const o: Outcome = { target, file, ok: true, id: manifest.id, version: manifest.version, runtime: manifest.runtime, issues: [] };
    loaded.set(o, l);
    return o;
  } catch (err) {
    if (err instanceof ManifestRejectedError) return { target, file: err.details.file, ok: false, issues: [...err.issues] };
    if (isLogoMeshError(err)) {
      const file = err.details.file ?? target;
      return { target, file, ok: false, issues: [{ code: err.code, message: err.message, file, path: '', ...pick(err.details) }] };
    }
    // A failure without a code is a LogoMesh bug; it is still one folder's outcome, so the
    // other folders are checked and reported all the same.
    const found = `${(err as Error)?.name ?? 'Error'}: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
    const expected = 'a coded accept or refusal (this is a LogoMesh bug; please report it with the manifest)';
    return { target, file: target, ok: false, issues: [{ code: 'LM_INTERNAL', message: `expected ${expected}, found ${found}`, file: target, path: '', expected, found }] };
  }
}

function pick(d: { expected?: string; found?: string }) {
  return { ...(d.expected ? { expected: d.expected } : {}), ...(d.found ? { found: d.found } : {}) };
}
