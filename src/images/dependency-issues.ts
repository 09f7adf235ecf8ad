import { readFileSync } from 'node:fs';
import { formatIssue, LogoMeshError, type ErrorCode, type ManifestIssue } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { parseManifestSource } from '../manifest/source.js';

/** One problem with a field of `dependencies`, found after the manifest was accepted. */
export interface DependencyProblem {
  /** JSON pointer, such as /dependencies/system/1. */
  readonly path: string;
  readonly expected: string;
  readonly found: string;
}

/**
 * The problems as manifest issues, with the line and column of each field when the file
 * can still be read (it may have been edited since it was loaded; then they are left out).
 */
function dependencyIssues(loaded: LoadedManifest, code: ErrorCode, problems: readonly DependencyProblem[]): ManifestIssue[] {
  let locate: (pointer: string) => { line: number; column: number } | undefined = () => undefined;
  try {
    const source = parseManifestSource(readFileSync(loaded.file, 'utf8'));
    if (source.errors.length === 0) locate = (p) => source.locate(p);
  } catch {
    // Unreadable now: report without positions.
  }
  const issues: ManifestIssue[] = problems.map((p) => ({
    code,
    file: loaded.file,
    path: p.path,
    ...locate(p.path),
    expected: p.expected,
    found: p.found,
    message: `expected ${p.expected}, found ${p.found}`,
  }));
  // File order, as manifest errors are reported.
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/**
 * One error for a plugin's dependency problems: a headline naming the plugin, then one
 * `file:line:col CODE /pointer: expected …, found …` line per problem, as manifest errors read.
 */
export function dependencyError(
  loaded: LoadedManifest,
  code: ErrorCode,
  headline: string,
  problems: readonly DependencyProblem[],
  details: Record<string, unknown> = {},
): LogoMeshError {
  const issues = dependencyIssues(loaded, code, problems);
  const first = issues[0];
  return new LogoMeshError(code, `${headline}\n${issues.map(formatIssue).join('\n')}`, {
    plugin: loaded.manifest.id,
    file: loaded.file,
    ...(first ? { path: first.path, expected: first.expected, found: first.found } : {}),
    ...(first?.line !== undefined ? { line: first.line, column: first.column } : {}),
    ...details,
    issues,
  });
}
