import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { Resources } from '../manifest/types.js';

/**
 * A manifest's `resources` as Kubernetes quantities. Requests equal limits, so every plugin
 * Pod is in the Guaranteed QoS class: the scheduler reserves what the plugin may use (no node
 * is overcommitted by plugins), and under node pressure plugins are the last to be evicted,
 * never a noisy plugin's neighbour first.
 *
 * maxProcesses and maxFileHandles have no field in a Pod: Kubernetes bounds them per node
 * (the kubelet's podPidsLimit, the container runtime's nofile limit). docs/kubernetes.md says
 * what an operator sets; the Pod carries the manifest's values as annotations.
 */
export function pluginResources(r: Resources): IResourceRequirements {
  const quantities = { cpu: cpuQuantity(r.maxCpuPercent), memory: `${r.maxMemoryMB}Mi` };
  return { limits: { ...quantities }, requests: { ...quantities } };
}

/** Percent of one CPU as millicores: 25 % is `250m`, 150 % is `1500m`. */
export function cpuQuantity(percent: number): string {
  return `${Math.round(percent * 10)}m`;
}

/**
 * /tmp and /dev/shm: memory-backed emptyDirs of maxTmpMB each, the only writable places a
 * manifest does not grant. Memory-backed volumes count against the container's memory limit,
 * as Docker's tmpfs does. Kubernetes cannot mount them noexec (docs/kubernetes.md).
 */
export function scratchVolumes(r: Resources): { volumes: IVolume[]; mounts: IVolumeMount[] } {
  const sizeLimit = `${r.maxTmpMB}Mi`;
  return {
    volumes: [
      { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit } },
      { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit } },
    ],
    mounts: [
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'shm', mountPath: '/dev/shm' },
    ],
  };
}
