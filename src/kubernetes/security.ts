import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { ISeccompProfile } from 'kubernetes-models/v1/SeccompProfile';

/**
 * The security settings every LogoMesh Pod gets, whatever its manifest says: the Kubernetes
 * spelling of what sandbox/container-spec.ts gives a Docker container.
 */

/** An unprivileged identity: the plugin's own uid and gid (names.ts), or the proxy's nobody. */
export interface PodIdentity {
  readonly uid: number;
  readonly gid: number;
}

/** Where the kubelet finds a profile the Security Profiles Operator installed (names.ts's profile names). */
export function seccompLocalhost(profileName: string): ISeccompProfile {
  // SPO >= 0.9 installs a cluster-scoped SeccompProfile <name> at
  // <kubelet root>/seccomp/operator/<name>.json; localhostProfile is relative to <kubelet root>/seccomp.
  return { type: 'Localhost', localhostProfile: `operator/${profileName}.json` };
}

/**
 * Pod level: non-root with the given ids, the given seccomp profile for every container,
 * and fsGroup so the files of mounted Secrets are readable by the plugin's group only
 * (their mode is 0440). No sysctls, no supplemental groups.
 */
export function podSecurityContext(id: PodIdentity, seccomp: ISeccompProfile): IPodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: id.uid,
    runAsGroup: id.gid,
    fsGroup: id.gid,
    seccompProfile: seccomp,
  };
}

/**
 * Container level: the same identity again (a container setting would override the Pod's),
 * no privilege escalation (no_new_privs: setuid binaries and file capabilities give nothing),
 * a read-only root, every capability dropped and none added, never privileged, the default
 * masked /proc.
 */
export function containerSecurityContext(id: PodIdentity): ISecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: id.uid,
    runAsGroup: id.gid,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    procMount: 'Default',
  };
}
