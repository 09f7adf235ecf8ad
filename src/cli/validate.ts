import { formatIssue, isLogoMeshError, loadManifest, ManifestRejectedError, type ManifestIssue } from '../index.js';
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

/** `logomesh validate <manifest-or-dir>...`: every error of every file, then one exit code. */
export function validateCommand(targets: string[], json: boolean, io: CliIo): number {
  const outcomes = targets.map(check);
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

function check(target: string): Outcome {
  try {
    const { manifest, file } = loadManifest(target);
    return { target, file, ok: true, id: manifest.id, version: manifest.version, runtime: manifest.runtime, issues: [] };
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
