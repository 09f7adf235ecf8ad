import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL } from '../../src/labels.js';
import { pluginFolders } from '../../src/manifest/folders.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { NO_POLICY } from '../../src/policy/policy.js';
import { credentialSecretName } from '../../src/kubernetes/credential.js';
import { pluginName } from '../../src/kubernetes/names.js';
import { renderInstallation, toYaml, type KubeObject } from '../../src/kubernetes/render.js';
import { kubeTarget } from '../../src/kubernetes/target.js';
import { publishImages } from './images.js';
import { getJson, kubectl, kubectlOk, waitFor } from './kubectl.js';

/**
 * What `logomesh kube render` promises, checked on the cluster KUBECONFIG names (run through
 * test/kube/e2e.sh, which skips when there is none). Nothing here has run on a real cluster
 * yet: docs/kubernetes.md#what-was-verified-how says which guarantees are verified offline only.
 *
 * The controller's Kubernetes backend is not built yet, so its Deployment is not applied and
 * the plugins' hub Secrets are created here; the probes need no hub.
 */

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are edited and read as plain JSON here */
type Obj = any;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ns = process.env.LOGOMESH_E2E_NAMESPACE ?? `lm-e2e-${randomBytes(3).toString('hex')}`;
const target = kubeTarget({
  namespace: ns,
  ...(process.env.LOGOMESH_E2E_REGISTRY ? { registry: process.env.LOGOMESH_E2E_REGISTRY } : {}),
  ...(process.env.LOGOMESH_E2E_POD_CIDR ? { podCidr: process.env.LOGOMESH_E2E_POD_CIDR } : {}),
  ...(process.env.LOGOMESH_E2E_ARCH ? { arch: process.env.LOGOMESH_E2E_ARCH } : {}),
});
const TARGET_SERVICE = 'lm-e2e-target';
const SPO_CRD = 'seccompprofiles.security-profiles-operator.x-k8s.io';

let root = '';
/** Probe plugins: the probe folder under other manifests. */
function probePlugin(id: string, manifest: string): LoadedManifest {
  const dir = path.join(root, id);
  cpSync(path.join(REPO, 'test', 'kube', 'probe'), dir, { recursive: true });
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: probe.py\n${manifest}`);
  return loadManifest(dir);
}

let objects: KubeObject[] = [];
const created: string[] = [];
const env = (d: Obj, vars: Record<string, string>) => d.spec.template.spec.containers[0].env.push(...Object.entries(vars).map(([name, value]) => ({ name, value })));
const find = (kind: string, name: string): Obj => objects.find((o) => o.kind === kind && o.metadata?.name === name);

function logsOf(selector: string): string {
  return kubectl(['logs', '-n', ns, '-l', selector, '--tail', '50']).stdout;
}
async function probeFacts(id: string): Promise<Obj> {
  return waitFor(`the probe report of ${id}`, () => {
    const line = logsOf(`${LABEL.plugin}=${id},${LABEL.role}=plugin`).split('\n').find((l) => l.startsWith('{"probe"'));
    return line ? JSON.parse(line).probe : undefined;
  });
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lm-kube-e2e-'));
  expect(kubectl(['get', 'crd', SPO_CRD]).code, `the Security Profiles Operator (${SPO_CRD}) must be installed: docs/kubernetes.md#deploy`).toBe(0);
  const loaded = [
    probePlugin('probe', 'resources: { maxMemoryMB: 64, maxTmpMB: 8 }\n'),
    probePlugin('hog', 'resources: { maxMemoryMB: 32 }\n'),
    probePlugin('netprobe', `capabilities:\n  - { id: net, scope: network, hosts: ['${TARGET_SERVICE}:8080'] }\n`),
  ];
  const images = await publishImages(loaded, target.registry);
  objects = renderInstallation({ loaded, policy: NO_POLICY, target, images });
  for (const o of objects.filter((x) => ['SeccompProfile', 'RuntimeClass'].includes(x.kind))) {
    // Cluster-wide objects are shared by every installation: remove afterwards only what this run created.
    if (kubectl(['get', o.kind.toLowerCase(), o.metadata!.name!]).code !== 0) created.push(`${o.kind.toLowerCase()}/${o.metadata!.name}`);
  }
  env(find('Deployment', pluginName('probe')), { PROBE_CONNECT: `${TARGET_SERVICE}:8080,kubernetes.default.svc:443`, PROBE_HOLD: '1' });
  env(find('Deployment', pluginName('netprobe')), { PROBE_CONNECT: `${TARGET_SERVICE}:8080`, PROBE_VIA_PROXY: `${TARGET_SERVICE}:8080,unlisted.example:443`, PROBE_HOLD: '1' });
  env(find('Deployment', pluginName('hog')), { PROBE_ALLOCATE_MB: '128', PROBE_HOLD: '1' });
  kubectlOk(['apply', '-f', '-'], { input: toYaml(objects.filter((o) => o.kind === 'Namespace')) });
}, 900_000);

afterAll(() => {
  kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=180s'], { timeoutMs: 200_000 });
  for (const ref of created) kubectl(['delete', ref, '--ignore-not-found']);
  if (root) rmSync(root, { recursive: true, force: true });
}, 240_000);

describe(`logomesh kube render on the cluster (namespace ${ns})`, () => {
  it('the API server accepts every rendered object, with strict field validation (server-side dry run)', () => {
    const examples = renderInstallation({
      loaded: pluginFolders(path.join(REPO, 'manifests')).map((f) => loadManifest(f)),
      policy: NO_POLICY,
      target,
      images: Object.fromEntries(pluginFolders(path.join(REPO, 'manifests')).map((f) => [loadManifest(f).manifest.id, `${target.registry}/plugin-example:1`])),
    });
    for (const set of [objects, examples]) {
      const r = kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], { input: toYaml(set), timeoutMs: 120_000 });
      expect(r.stderr).not.toMatch(/unknown field|duplicate field|strict decoding/i);
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('applies, and the seccomp profiles are installed on the nodes by SPO', async () => {
    // First the target the probes aim at, ready before any probe starts: a connection a probe
    // cannot make is then the fences' doing, never a server not up yet.
    const image = find('Deployment', pluginName('probe')).spec.template.spec.containers[0].image;
    const [server, service, control] = helperWorkloads(image);
    kubectlOk(['apply', '-f', '-'], { input: toYaml([server, service] as KubeObject[]) });
    kubectlOk(['wait', '-n', ns, '--for=condition=Ready', `pod/${TARGET_SERVICE}`, '--timeout=300s'], { timeoutMs: 320_000 });
    kubectlOk(['apply', '-f', '-'], { input: toYaml([control] as KubeObject[]) });
    // The controller is not applied: its Kubernetes backend is not built yet (docs/kubernetes.md).
    const apply = objects.filter((o) => o.kind !== 'Namespace' && !(o.kind === 'Deployment' && o.metadata?.name === 'logomesh-controller'));
    kubectlOk(['apply', '-f', '-'], { input: toYaml(apply), timeoutMs: 180_000 });
    for (const p of objects.filter((o) => o.kind === 'SeccompProfile')) {
      await waitFor(`SeccompProfile ${p.metadata!.name} installed`, () => (getJson<Obj>(['seccompprofile', p.metadata!.name!]).status?.status === 'Installed' ? true : undefined));
    }
    // What the controller will create: until then the plugin Pods wait for their Secrets.
    for (const id of ['probe', 'hog', 'netprobe']) {
      kubectlOk(['create', 'secret', 'generic', '-n', ns, credentialSecretName(id), `--from-literal=key=${randomBytes(32).toString('base64')}`]);
    }
  }, 900_000);

  describe('inside a plugin Pod', () => {
    let facts: Obj;
    let pod: Obj;
    beforeAll(async () => {
      facts = await probeFacts('probe');
      pod = find('Deployment', pluginName('probe')).spec.template.spec;
    }, 300_000);

    it("runs as the plugin's own uid and gid, with no capability, no_new_privs and LogoMesh's seccomp filter", () => {
      expect(facts.uid).toBe(pod.securityContext.runAsUser);
      expect(facts.gid).toBe(pod.securityContext.runAsGroup);
      expect(facts.status.CapEff).toBe('0000000000000000');
      expect(facts.status.CapBnd).toBe('0000000000000000');
      expect(facts.status.NoNewPrivs).toBe('1');
      expect(facts.status.Seccomp).toBe('2');
    });

    it("gets LogoMesh's answers from the kernel: EPERM for bpf, SIGSYS for mount (not the runtime's default profile)", () => {
      expect(facts.bpf).toBe('EPERM');
      expect(facts.mount).toBe('signal-31');
    });

    it('has a read-only root and a memory /tmp of maxTmpMB, executable (a difference from Docker, documented)', () => {
      expect(facts.writeRoot).toBe('EROFS');
      expect(facts.writeTmp).toBe('ok');
      expect(facts.tmpSizeMB).toBe(8);
      expect(facts.execTmp).toBe('ok');
    });

    it('holds no API token, and can read its own hub credential', () => {
      expect(facts.serviceAccountToken).toBe(false);
      expect(facts.credentialReadable).toBe(true);
    });

    it('reaches neither a Pod of the namespace nor the API server (NetworkPolicy), which a Pod outside the fences reaches', async () => {
      expect(facts.connect[`${TARGET_SERVICE}:8080`]).not.toBe('connected');
      expect(facts.connect['kubernetes.default.svc:443']).not.toBe('connected');
      const control = await waitFor('the control probe', () => {
        const line = logsOf('app.kubernetes.io/name=lm-e2e-control').split('\n').find((l) => l.startsWith('{"probe"'));
        return line ? JSON.parse(line).probe : undefined;
      });
      expect(control.connect[`${TARGET_SERVICE}:8080`]).toBe('connected');
    }, 300_000);
  });

  it('a networked plugin: no direct connection; through its proxy an unlisted host is refused (403), and a listed one inside the cluster is not reached', async () => {
    const facts = await probeFacts('netprobe');
    expect(facts.connect[`${TARGET_SERVICE}:8080`]).not.toBe('connected');
    expect(facts.viaProxy['unlisted.example:443']).toBe('403');
    expect(facts.viaProxy[`${TARGET_SERVICE}:8080`]).not.toBe('200');
  }, 300_000);

  it('a plugin over its memory limit is OOM-killed by the kernel', async () => {
    const reason = await waitFor('the hog to be OOM-killed', () => {
      const pods = getJson<Obj>(['pods', '-n', ns, '-l', `${LABEL.plugin}=hog`]).items;
      const s = pods[0]?.status?.containerStatuses?.[0];
      return s?.lastState?.terminated?.reason ?? (s?.state?.terminated?.reason === 'OOMKilled' ? 'OOMKilled' : undefined);
    }, 300_000);
    expect(reason).toBe('OOMKilled');
  }, 320_000);

  it('the namespace refuses a privileged Pod, whoever creates it (Pod Security Standard restricted)', () => {
    const bad = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'lm-e2e-privileged', namespace: ns }, spec: { containers: [{ name: 'x', image: 'scratch', securityContext: { privileged: true } }] } };
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(bad) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/violates PodSecurity "restricted/);
  });
});

/** A small HTTP server to aim at, and a probe Pod that no LogoMesh policy selects. Both pass the restricted standard. */
function helperWorkloads(image: string): object[] {
  const secure = {
    securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
    container: { imagePullPolicy: 'IfNotPresent', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true } },
  };
  const pod = (name: string, container: object) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { 'app.kubernetes.io/name': name } },
    spec: { automountServiceAccountToken: false, securityContext: secure.securityContext, containers: [{ name, image, ...secure.container, ...container }] },
  });
  return [
    pod(TARGET_SERVICE, { command: ['python3', '-m', 'http.server', '8080', '--directory', '/plugin'], ports: [{ containerPort: 8080 }] }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: TARGET_SERVICE, namespace: ns }, spec: { selector: { 'app.kubernetes.io/name': TARGET_SERVICE }, ports: [{ port: 8080, targetPort: 8080 }] } },
    pod('lm-e2e-control', { command: ['python3', '/plugin/probe.py'], env: [{ name: 'PROBE_CONNECT', value: `${TARGET_SERVICE}:8080` }, { name: 'PROBE_HOLD', value: '1' }] }),
  ];
}
