import { afterAll, describe, expect, it } from 'vitest';
import { LABEL, OWNER } from '../../src/labels.js';
import { hubKeyName, MAX_KUBE_PLUGIN_ID, pluginName, proxyName } from '../../src/kubernetes/names.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { all, find, KubeFixtures, render, TARGET, type Obj } from './support/kube-fixtures.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());
const objects = render(fx.load(), fx.policy().policy);
const deployments = all(objects, 'Deployment');
const pluginPods = deployments.filter((d) => d.metadata.labels[LABEL.role] === 'plugin');
const proxyPods = deployments.filter((d) => d.metadata.labels[LABEL.role] === 'egress');
const podSpec = (d: Obj) => d.spec.template.spec;
const name = (d: Obj) => d.metadata.name as string;

describe('every LogoMesh Pod (plugins, egress proxies, controller)', () => {
  it.each(deployments.map(name))('%s: non-root, no privilege escalation, read-only root, no capabilities, no host namespaces, a seccomp profile', (n) => {
    const spec = podSpec(find(objects, 'Deployment', n));
    expect(spec.securityContext.runAsNonRoot).toBe(true);
    expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(['Localhost', 'RuntimeDefault']).toContain(spec.securityContext.seccompProfile.type);
    for (const key of ['hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace']) expect(spec[key] ?? false, key).toBe(false);
    expect(spec.enableServiceLinks).toBe(false);
    expect(spec.containers).toHaveLength(1);
    expect(spec.initContainers).toBeUndefined();
    for (const c of spec.containers) {
      const sc = c.securityContext;
      expect(sc).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
      expect(sc.capabilities.add).toBeUndefined();
      expect(sc.runAsUser).toBe(spec.securityContext.runAsUser);
      expect(c.ports?.some((p: Obj) => p.hostPort !== undefined) ?? false).toBe(false);
    }
    // Only Secrets, ConfigMaps and emptyDirs: never a host path, the engine's socket or a PVC of someone else's.
    // The controller's home is its own claim; nothing else but these.
    const kinds = n === 'logomesh-controller' ? ['emptyDir', 'secret', 'configMap', 'persistentVolumeClaim'] : ['emptyDir', 'secret', 'configMap'];
    for (const v of spec.volumes ?? []) expect(Object.keys(v).filter((k) => k !== 'name').every((k) => kinds.includes(k))).toBe(true);
  });

  it('no Pod but the controller holds an API token', () => {
    for (const d of [...pluginPods, ...proxyPods]) {
      expect(podSpec(d).automountServiceAccountToken).toBe(false);
      expect(podSpec(d).serviceAccountName).toBe('logomesh-plugin');
    }
    expect(find(objects, 'ServiceAccount', 'logomesh-plugin').automountServiceAccountToken).toBe(false);
    expect(all(objects, 'RoleBinding').flatMap((b) => b.subjects.map((s: Obj) => s.name))).toEqual(['logomesh-controller']);
  });

  it('the namespace enforces the restricted Pod Security Standard', () => {
    expect(find(objects, 'Namespace', TARGET.namespace).metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });
});

describe('a plugin Pod', () => {
  const plain = find(objects, 'Deployment', pluginName('plain'));
  const spec = podSpec(plain);
  const container = spec.containers[0];

  it("runs as the plugin's own uid and gid, derived from the instance and the plugin id, distinct per plugin", () => {
    expect(spec.securityContext).toMatchObject({ runAsUser: pluginUid(TARGET.instance, 'plain'), runAsGroup: pluginGid(TARGET.instance, 'plain'), fsGroup: pluginGid(TARGET.instance, 'plain') });
    const uids = pluginPods.map((d) => podSpec(d).securityContext.runAsUser);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) expect(uid).toBeGreaterThanOrEqual(1_000_000_000);
    // Another installation (namespace) gives the same plugin another user.
    expect(pluginUid('other', 'plain')).not.toBe(pluginUid(TARGET.instance, 'plain'));
  });

  it("loads LogoMesh's seccomp profile from the SeccompProfile object rendered with it", () => {
    const ref = spec.securityContext.seccompProfile;
    expect(ref.type).toBe('Localhost');
    const profile = all(objects, 'SeccompProfile').find((p) => `operator/${p.metadata.name}.json` === ref.localhostProfile);
    expect(profile?.spec.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('has requests equal to limits from the manifest (Guaranteed QoS), and /tmp and /dev/shm in memory of maxTmpMB', () => {
    // The manifest defaults: 50 % of a CPU, 128 MB.
    expect(container.resources).toEqual({ limits: { cpu: '500m', memory: '128Mi' }, requests: { cpu: '500m', memory: '128Mi' } });
    const fetcher = podSpec(find(objects, 'Deployment', pluginName('fetcher'))).containers[0];
    expect(fetcher.resources).toEqual({ limits: { cpu: '1500m', memory: '96Mi' }, requests: { cpu: '1500m', memory: '96Mi' } });
    const tmp = spec.volumes.find((v: Obj) => v.name === 'tmp');
    expect(tmp.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Mi' });
    expect(container.volumeMounts).toEqual(expect.arrayContaining([{ name: 'tmp', mountPath: '/tmp' }, { name: 'shm', mountPath: '/dev/shm' }]));
    const writer = podSpec(find(objects, 'Deployment', pluginName('writer')));
    expect(writer.volumes.find((v: Obj) => v.name === 'tmp').emptyDir.sizeLimit).toBe('24Mi');
  });

  it('carries the limits a Pod has no field for, and the manifest hash, as annotations', () => {
    expect(plain.spec.template.metadata.annotations).toEqual({ [LABEL.manifestHash]: expect.stringMatching(/^[0-9a-f]{64}$/), 'io.logomesh.max-processes': '64', 'io.logomesh.max-file-handles': '256' });
  });

  it('mounts its own hub credential Secret, read-only, readable by its group only, and names the file', () => {
    const vol = spec.volumes.find((v: Obj) => v.secret);
    expect(vol.secret).toEqual({ secretName: 'lm-hubkey-plain', items: [{ key: 'key', path: 'key' }], defaultMode: 0o440, optional: false });
    expect(container.volumeMounts).toContainEqual({ name: vol.name, mountPath: '/run/logomesh/credential', readOnly: true });
    const env = Object.fromEntries(container.env.map((e: Obj) => [e.name, e.value]));
    expect(env).toMatchObject({ LOGOMESH_HUB_CREDENTIAL: '/run/logomesh/credential/key', LOGOMESH_HUB_URL: 'ws://logomesh-hub.lm-test.svc:7070/v1', LOGOMESH_PLUGIN_ID: 'plain', HOME: '/tmp' });
    expect(env.HTTP_PROXY).toBeUndefined();
    // No plugin mounts another's Secret.
    for (const d of pluginPods) {
      const id = d.metadata.labels[LABEL.plugin];
      expect(podSpec(d).volumes.filter((v: Obj) => v.secret).map((v: Obj) => v.secret.secretName)).toEqual([hubKeyName(id)]);
    }
  });

  it('is one replica, replaced and never surged, pinned to Linux nodes of the target architecture', () => {
    expect(plain.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
    expect(spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' });
    expect(plain.spec.selector.matchLabels).toEqual(plain.spec.template.metadata.labels);
  });

  it('runs the runtime command from the image, the compiled binary for Go', () => {
    expect(container).toMatchObject({ image: 'registry.test/plugin-plain:1', command: ['python3', '-u', '-B', '/plugin/main.py'], workingDir: '/plugin' });
    const tracer = podSpec(find(objects, 'Deployment', pluginName('tracer'))).containers[0];
    expect(tracer.command).toEqual(['/opt/logomesh/plugin']);
    expect(tracer.workingDir).toBeUndefined();
  });

  it('gets a writable emptyDir for a write grant only; the read grant is the image itself', () => {
    const writer = podSpec(find(objects, 'Deployment', pluginName('writer')));
    const grants = writer.containers[0].volumeMounts.filter((m: Obj) => m.mountPath.startsWith('/plugin'));
    expect(grants).toEqual([{ name: 'grant-0', mountPath: '/plugin/state' }]);
    expect(writer.volumes.find((v: Obj) => v.name === 'grant-0').emptyDir).toEqual({ sizeLimit: '24Mi' });
  });
});

describe('labels', () => {
  it("every object carries LogoMesh's owner and role; every namespaced one the instance and the namespace", () => {
    for (const o of objects as Obj[]) {
      expect(o.metadata.labels[LABEL.owner], `${o.kind}/${o.metadata.name}`).toBe(OWNER);
      expect(o.metadata.labels[LABEL.role], `${o.kind}/${o.metadata.name}`).toMatch(/^(plugin|egress|controller|seccomp-profile|runtime-class)$/);
      expect(o.metadata.labels[LABEL.host]).toBeUndefined();
      const clusterWide = ['Namespace', 'SeccompProfile', 'RuntimeClass'].includes(o.kind);
      if (!clusterWide) {
        expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(TARGET.namespace);
        expect(o.metadata.labels[LABEL.instance]).toBe(TARGET.instance);
      }
    }
  });

  it("no plugin id can name another plugin's objects: ids that mimic other roles' names all get their own", () => {
    const ids = ['fetcher', 'fetcher-egress', 'egress-fetcher', 'hubkey-fetcher', 'plugin-fetcher', 'fetcher-hub', 'deny-all'];
    const rendered = render(fx.load(ids, Object.fromEntries(ids.map((id) => [id, { files: { 'main.py': '\n' }, manifest: `runtime: python\nentrypoint: main.py\ncapabilities: [{ id: net, scope: network, hosts: ['api.example.com:443'] }]\nresources: { maxNetworkConnections: 2 }\n` }]))));
    const keys = rendered.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(keys.length).toBeGreaterThan(7 * 6);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    for (const o of rendered as Obj[]) if (o.metadata.namespace) expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    expect([pluginName('x'), proxyName('x'), hubKeyName('x')]).toEqual(['lm-plugin-x', 'lm-egress-x', 'lm-hubkey-x']);
  });

  it(`a plugin id longer than ${MAX_KUBE_PLUGIN_ID} characters is refused (LM_KUBE_RENDER), never cut into a name another id could take`, () => {
    const long = 'a'.repeat(MAX_KUBE_PLUGIN_ID + 1);
    const loaded = fx.load([long], { [long]: { files: { 'main.py': '\n' }, manifest: 'runtime: python\nentrypoint: main.py\n' } });
    expect(() => render(loaded)).toThrow(expect.objectContaining({ code: 'LM_KUBE_RENDER', details: expect.objectContaining({ path: '/id', file: loaded[0]!.file }) }));
    const fits = 'b'.repeat(MAX_KUBE_PLUGIN_ID);
    expect(pluginName(fits)).toHaveLength(63);
    expect(render(fx.load([fits], { [fits]: { files: { 'main.py': '\n' }, manifest: 'runtime: python\nentrypoint: main.py\n' } })).length).toBeGreaterThan(0);
  });

  it('the same input renders the same objects (no host name, time or randomness)', () => {
    const again = render(fx.load(), fx.policy().policy);
    const strip = (xs: Obj[]) => JSON.parse(JSON.stringify(xs).replace(/"io\.logomesh\.manifest-hash":"[0-9a-f]+"/g, '"h":""'));
    expect(strip(again as Obj[])).toEqual(strip(objects as Obj[]));
  });
});
