import type { LoadedManifest, Runtime } from '../manifest/types.js';
import { dependencyError, type DependencyProblem } from './dependency-issues.js';

/** The keys of `dependencies.packages`. */
export type PackageKey = 'python' | 'npm' | 'go' | 'rust';
export type PackageManager = 'npm' | 'pip';

/** What an interpreted plugin asks to have installed, as LogoMesh will install it. */
export interface PackageRequest {
  readonly runtime: Runtime;
  readonly manager: PackageManager;
  /** The list's key in the manifest (`npm` or `python`). */
  readonly key: PackageKey;
  /** Sorted, duplicates removed: the same set always gives the same image. */
  readonly specs: readonly string[];
}

/** The package list each runtime installs from; go and rust install none. */
const INSTALLS: Readonly<Record<Runtime, { key: PackageKey; manager: PackageManager } | undefined>> = {
  node: { key: 'npm', manager: 'npm' },
  python: { key: 'python', manager: 'pip' },
  go: undefined,
  rust: undefined,
};

/** Why a compiled runtime takes no package list, in words that say what to do instead. */
const COMPILED_RULE: Readonly<Record<'go' | 'rust', string>> = {
  go:
    'no packages for a Go plugin: it is compiled offline (GOPATH mode, no module proxy) against the standard library, ' +
    "the LogoMesh SDK and gorilla/websocket; vendor other Go code into the plugin's vendor/ folder (go mod vendor)",
  rust:
    'no packages for a Rust plugin: it is compiled offline (crates.io is never reached) against the standard library, ' +
    'logomesh, serde and serde_json; put other code into the plugin folder as modules',
};

/**
 * An npm spec LogoMesh fetches: a registry name (optionally scoped) with an optional
 * version, range or tag. URLs, paths (`file:`), git and alias (`npm:`) specs are refused:
 * the fetch runs on the host, where such a spec could read the host's files or run git.
 */
const NPM_SPEC = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=*+_-]+)?$/i;

/** A PEP 508 name with optional extras and version clauses; no URLs, paths or markers. */
const PIP_SPEC = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?(?:(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+(?:,(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+)*)?$/;

/** The SDK's package name in the node image; a plugin cannot replace it. */
export const NODE_SDK = 'logomesh';

/** The name part of an npm spec (`@scope/name@^1` -> `@scope/name`). */
export function npmName(spec: string): string {
  const at = spec.indexOf('@', 1);
  return at === -1 ? spec : spec.slice(0, at);
}

/**
 * The packages a plugin asks for, checked against what its runtime can install; undefined
 * when it asks for none. Every problem is reported at once as LM_PACKAGES_UNSUPPORTED: a
 * list for a compiled runtime, a list for another runtime's package manager, a spec that
 * is not a plain registry package.
 */
export function packageRequest(loaded: LoadedManifest): PackageRequest | undefined {
  const { runtime, dependencies } = loaded.manifest;
  const installs = INSTALLS[runtime];
  const problems: DependencyProblem[] = [];
  let specs: readonly string[] = [];
  for (const key of ['python', 'npm', 'go', 'rust'] as const) {
    const list = dependencies.packages[key] ?? [];
    if (list.length === 0) continue;
    const pointer = `/dependencies/packages/${key}`;
    if (installs?.key === key) {
      specs = list;
      list.forEach((spec, i) => {
        const problem = specProblem(installs.manager, spec);
        if (problem) problems.push({ path: `${pointer}/${i}`, expected: problem, found: JSON.stringify(spec) });
      });
    } else if (runtime === 'go' || runtime === 'rust') {
      problems.push({ path: pointer, expected: COMPILED_RULE[runtime], found: `${key} packages ${JSON.stringify(list)}` });
    } else {
      problems.push({
        path: pointer,
        expected: `packages for the ${runtime} runtime only, listed under dependencies.packages.${installs?.key ?? runtime}`,
        found: `${key} packages ${JSON.stringify(list)}`,
      });
    }
  }
  if (problems.length > 0) {
    throw dependencyError(loaded, 'LM_PACKAGES_UNSUPPORTED', `plugin ${loaded.manifest.id}: dependencies.packages lists what the ${runtime} runtime cannot install`, problems, {
      runtime,
    });
  }
  if (!installs || specs.length === 0) return undefined;
  return { runtime, manager: installs.manager, key: installs.key, specs: [...new Set(specs)].sort() };
}

function specProblem(manager: PackageManager, spec: string): string | undefined {
  if (manager === 'npm') {
    if (!NPM_SPEC.test(spec)) {
      return 'an npm registry package: name, name@version, name@range or @scope/name@range (URL, file:, git and npm: alias specs are not fetched)';
    }
    if (npmName(spec) === NODE_SDK) return `a package other than '${NODE_SDK}', which the node image provides`;
    return undefined;
  }
  if (!PIP_SPEC.test(spec)) {
    return 'a package from the Python package index: name, name[extras] or name with version clauses such as numpy==1.26.4 (URLs, paths and markers are not installed)';
  }
  return undefined;
}
