import { createHash } from 'node:crypto';
import { LogoMeshError } from '../errors.js';
import { parseSeccompProfile, type SeccompRule } from '../seccomp/profiles.js';
import { kubeLabels } from './names.js';

/**
 * LogoMesh's seccomp profiles (images/seccomp/, Docker's format) as the Security Profiles
 * Operator's SeccompProfile objects: SPO writes each to every node, where the kubelet loads
 * it for a Pod whose seccompProfile is `Localhost` with `operator/<name>.json`.
 *
 * Docker resolves a profile's `archMap` and per-rule `includes`/`excludes` on the host it
 * runs on; SPO installs a profile as it is written. So a profile is resolved here for one
 * node architecture, and the Pods that use it are scheduled on nodes of that architecture
 * only (their nodeSelector names it).
 */

/** Node architectures a profile can be resolved for (`kubernetes.io/arch`), with libseccomp's name for each. */
export const NODE_ARCHES = { amd64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64' } as const;
export type NodeArch = keyof typeof NODE_ARCHES;

/** API of the SeccompProfile objects: served by SPO since v0.4, cluster-scoped since v0.9, still served by v1.0. */
export const SPO_API_VERSION = 'security-profiles-operator.x-k8s.io/v1beta1';

/** A rule as SPO's SeccompProfile takes it: no comment, no includes or excludes. */
export interface SpoSyscall {
  readonly names: readonly string[];
  readonly action: string;
  readonly errnoRet?: number;
  readonly args?: readonly { readonly index: number; readonly value?: number; readonly valueTwo?: number; readonly op: string }[];
}

export interface SeccompProfileObject {
  readonly apiVersion: typeof SPO_API_VERSION;
  readonly kind: 'SeccompProfile';
  readonly metadata: { readonly name: string; readonly labels: Record<string, string>; readonly annotations: Record<string, string> };
  readonly spec: { readonly defaultAction: string; readonly architectures: readonly string[]; readonly syscalls: readonly SpoSyscall[] };
}

/** Does a Docker rule apply on `arch`? Docker's arch names are Go's (amd64, arm64, x32, ...). */
function appliesOn(rule: SeccompRule, arch: NodeArch): boolean {
  // A rule that needs a capability never applies: every LogoMesh container drops them all.
  if (rule.includes?.caps?.length) return false;
  if (rule.includes?.minKernel) return false;
  const only = rule.includes?.arches ?? [];
  if (only.length > 0 && !only.includes(arch)) return false;
  return !(rule.excludes?.arches ?? []).includes(arch);
}

/** One Docker profile (JSON text, as seccomp.ts gives it) resolved for a node architecture. Pure. */
export function spoSpec(profileText: string, arch: NodeArch, source: string): SeccompProfileObject['spec'] {
  const profile = parseSeccompProfile(profileText, source);
  const native = NODE_ARCHES[arch];
  const entry = profile.archMap?.find((a) => a.architecture === native);
  if (!entry) {
    throw new LogoMeshError('LM_SECCOMP_PROFILE', `the seccomp profile ${source} has no archMap entry for ${native} (node architecture ${arch})`, {
      file: source,
      path: '/archMap',
      expected: `an entry for ${native}`,
      found: (profile.archMap ?? []).map((a) => a.architecture).join(', ') || 'none',
    });
  }
  const syscalls = profile.syscalls
    .filter((r) => appliesOn(r, arch))
    .map(
      (r): SpoSyscall => ({
        names: [...r.names],
        action: r.action,
        ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
        ...(r.args && r.args.length > 0 ? { args: r.args.map((a) => ({ index: a.index, op: a.op, value: a.value, ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}) })) } : {}),
      }),
    );
  return { defaultAction: profile.defaultAction, architectures: [entry.architecture, ...entry.subArchitectures], syscalls };
}

/**
 * The SeccompProfile object for a resolved profile. Its name is `logomesh-<12 hex digits of
 * its spec>`: the same profile always has the same name, so several installations (and
 * several plugins) share one cluster-wide object, and a changed profile is a new object the
 * Pods move to, never an edit under running Pods.
 */
export function seccompProfileObject(spec: SeccompProfileObject['spec'], arch: NodeArch, description: string): SeccompProfileObject {
  const hash = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 12);
  return {
    apiVersion: SPO_API_VERSION,
    kind: 'SeccompProfile',
    metadata: {
      name: `logomesh-${arch}-${hash}`,
      labels: kubeLabels('seccomp-profile'),
      annotations: { 'io.logomesh.seccomp-profile': description },
    },
    spec,
  };
}
