import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { IMAGES_DIR } from '../paths.js';

/**
 * LogoMesh's own seccomp profiles, in images/seccomp/: Docker's default allowlist minus the
 * system calls no plugin needs (images/seccomp/derive.mjs derives them; docs/security.md
 * lists every choice). The engine takes a profile inline, as JSON text in SecurityOpt.
 */
export const SECCOMP_DIR = path.join(IMAGES_DIR, 'seccomp');

/** `no-network` also limits socket(2) and socketpair(2) to AF_UNIX (the hub socket). */
export type SeccompVariant = 'network' | 'no-network';

export const SECCOMP_FILES: Readonly<Record<SeccompVariant, string>> = {
  network: 'plugin.json',
  'no-network': 'plugin-no-network.json',
};

/** One rule of a profile, as the engine reads it (moby's profiles/seccomp Syscall). */
export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: string;
  readonly errnoRet?: number;
  readonly args: readonly { readonly index: number; readonly value: number; readonly valueTwo?: number; readonly op: string }[] | null;
  readonly comment?: string;
  readonly includes?: { readonly caps?: readonly string[]; readonly arches?: readonly string[]; readonly minKernel?: string };
  readonly excludes?: { readonly caps?: readonly string[]; readonly arches?: readonly string[]; readonly minKernel?: string };
}

export interface SeccompProfile {
  readonly defaultAction: string;
  readonly archMap?: readonly { readonly architecture: string; readonly subArchitectures: readonly string[] }[];
  readonly syscalls: readonly SeccompRule[];
}

/** The variant for a container in the given network mode: `none` unless the plugin has network capabilities. */
export function seccompVariant(networkMode: string): SeccompVariant {
  return networkMode === 'none' ? 'no-network' : 'network';
}

/**
 * Parse and check a profile's text. It must be an allowlist: a default action that denies,
 * and rules that name their system calls. The check is for a damaged installation, not a
 * full validation: the engine refuses a profile it cannot load when the container is created.
 */
export function parseSeccompProfile(text: string, source: string): SeccompProfile {
  const bad = (why: string, cause?: unknown) =>
    new LogoMeshError('LM_SECCOMP_PROFILE', `the seccomp profile ${source} ${why}; reinstall LogoMesh or restore images/seccomp/`, { file: source }, { cause });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw bad(`is not valid JSON (${(err as Error).message})`, err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('is not a JSON object');
  const p = parsed as Partial<SeccompProfile>;
  if (typeof p.defaultAction !== 'string' || !p.defaultAction.startsWith('SCMP_ACT_')) throw bad('has no defaultAction');
  if (p.defaultAction === 'SCMP_ACT_ALLOW' || p.defaultAction === 'SCMP_ACT_LOG') throw bad(`allows by default (${p.defaultAction}); it must be an allowlist`);
  if (!Array.isArray(p.syscalls) || p.syscalls.length === 0) throw bad('has no syscalls rules');
  for (const [i, r] of p.syscalls.entries()) {
    const rule = r as Partial<SeccompRule> | null;
    if (!rule || !Array.isArray(rule.names) || rule.names.length === 0 || rule.names.some((n) => typeof n !== 'string') || typeof rule.action !== 'string') {
      throw bad(`has a malformed rule at syscalls[${i}]`);
    }
  }
  return p as SeccompProfile;
}

/** Read a profile file and return it as compact JSON text, checked by parseSeccompProfile. */
export function loadSeccompProfile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LogoMeshError('LM_SECCOMP_PROFILE', `cannot read the seccomp profile ${file}: ${(err as Error).message}; reinstall LogoMesh or restore images/seccomp/`, { file }, { cause: err });
  }
  return JSON.stringify(parseSeccompProfile(text, file));
}

const cache = new Map<SeccompVariant, string>();

/**
 * The profile of a variant as compact JSON text. Read from images/seccomp/ on first use and
 * cached for the life of the process, so every container this process creates gets the
 * same profile, and containerSpec stays deterministic even though it calls this.
 */
export function seccompProfile(variant: SeccompVariant): string {
  let text = cache.get(variant);
  if (text === undefined) {
    text = loadSeccompProfile(path.join(SECCOMP_DIR, SECCOMP_FILES[variant]));
    cache.set(variant, text);
  }
  return text;
}

/**
 * The SecurityOpt entry that loads a profile. Only a JSON profile is accepted: `unconfined`
 * (no filter at all) or a file name, which the engine would resolve on its own host, are not.
 */
export function seccompSecurityOpt(profileText: string): string {
  if (!profileText.trimStart().startsWith('{')) {
    throw new LogoMeshError('LM_SECCOMP_PROFILE', 'a seccomp profile must be given as JSON text; "unconfined" and file names are not accepted', {
      found: profileText.slice(0, 40),
    });
  }
  return `seccomp=${profileText}`;
}

/** The comment that starts LogoMesh's deny rules in its profiles (images/seccomp/derive.mjs writes them). */
const DENY_RULE_COMMENT = 'LogoMesh: never needed by a plugin';

/** LogoMesh's deny rules: EPERM for what runtimes may probe, a kill for what only an attack calls. */
function denyRuleIndexes(profile: SeccompProfile): number[] {
  return profile.syscalls.flatMap((r, i) =>
    (r.action === 'SCMP_ACT_ERRNO' || r.action === 'SCMP_ACT_KILL_PROCESS') && typeof r.comment === 'string' && r.comment.startsWith(DENY_RULE_COMMENT) ? [i] : [],
  );
}

let deniedCache: { all: readonly string[]; killed: readonly string[] } | undefined;

function denyLists(): { all: readonly string[]; killed: readonly string[] } {
  if (deniedCache === undefined) {
    const profile = JSON.parse(seccompProfile('network')) as SeccompProfile;
    const rules = denyRuleIndexes(profile).map((i) => profile.syscalls[i]!);
    if (rules.length === 0) throw new LogoMeshError('LM_SECCOMP_PROFILE', `the seccomp profile ${path.join(SECCOMP_DIR, SECCOMP_FILES.network)} has no LogoMesh deny rule; reinstall LogoMesh or restore images/seccomp/`, {});
    deniedCache = {
      all: Object.freeze(rules.flatMap((r) => r.names)),
      killed: Object.freeze(rules.filter((r) => r.action === 'SCMP_ACT_KILL_PROCESS').flatMap((r) => r.names)),
    };
  }
  return deniedCache;
}

/**
 * The system calls LogoMesh's profiles deny (with EPERM, or by killing the caller): the
 * only ones a manifest may ask for (security.syscalls) and a policy may allow
 * (capabilities.allowedSyscalls). Read from the profile's deny rules, the one place the
 * list lives once derived.
 */
export function deniedSyscalls(): readonly string[] {
  return denyLists().all;
}

/** The denied system calls whose caller is killed (SIGSYS) rather than answered EPERM. */
export function killedSyscalls(): readonly string[] {
  return denyLists().killed;
}

/**
 * A profile with `syscalls` taken out of LogoMesh's deny rules and allowed, without
 * conditions: what a plugin whose manifest asks for them, and whose policy allows them,
 * runs with. Pure: the same profile text and names always give the same text (names are
 * sorted). Every name must be in a deny rule (LM_SECCOMP_PROFILE otherwise: a caller
 * that skipped validation). No names: the profile unchanged.
 */
export function profileAllowing(profileText: string, syscalls: readonly string[]): string {
  if (syscalls.length === 0) return profileText;
  const profile = parseSeccompProfile(profileText, '(profile text)');
  const deny = new Set(denyRuleIndexes(profile));
  const listed = new Set([...deny].flatMap((i) => profile.syscalls[i]!.names));
  const names = [...new Set(syscalls)].sort();
  const missing = names.filter((n) => !listed.has(n));
  if (deny.size === 0 || missing.length > 0) {
    throw new LogoMeshError('LM_SECCOMP_PROFILE', `cannot allow ${missing.join(', ')}: not on the profile's LogoMesh deny list`, { found: missing.join(', ') });
  }
  const syscallsOut: SeccompRule[] = profile.syscalls.flatMap((r, j) => {
    if (!deny.has(j)) return [r];
    const kept = r.names.filter((n) => !names.includes(n));
    return kept.length > 0 ? [{ ...r, names: kept }] : [];
  });
  syscallsOut.push({ names, action: 'SCMP_ACT_ALLOW', args: [], comment: 'LogoMesh: requested by the manifest (security.syscalls) and allowed by the operator policy', includes: {}, excludes: {} });
  return JSON.stringify({ ...profile, syscalls: syscallsOut });
}

/** The profile for a plugin's container: its variant's, with the system calls its manifest asks for (and its policy allows) allowed. */
export function pluginSeccompProfile(networked: boolean, syscalls: readonly string[]): string {
  return profileAllowing(seccompProfile(networked ? 'network' : 'no-network'), syscalls);
}
