import { afterAll, describe, expect, it } from 'vitest';
import { manifestsConfigMap, MAX_CONFIGMAP_DATA } from '../../src/kubernetes/controller.js';
import { all, find, KubeFixtures, render, TARGET, type Obj } from './support/kube-fixtures.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());
const objects = render(fx.load(['plain', 'fetcher']));
const rules = find(objects, 'Role', 'logomesh-controller').rules as Obj[];
const verbsOn = (group: string, resource: string): string[] => rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs);

describe("the controller's least privilege", () => {
  it('is a namespaced Role bound to its own ServiceAccount only: no ClusterRole, no wildcard', () => {
    expect(objects.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
    expect(JSON.stringify(rules)).not.toContain('*');
    const binding = find(objects, 'RoleBinding', 'logomesh-controller');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'logomesh-controller' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'logomesh-controller', namespace: TARGET.namespace }]);
  });

  it('may manage plugin workloads, their Pods, output, allow-lists, Services and fences', () => {
    expect(verbsOn('apps', 'deployments')).toEqual(expect.arrayContaining(['get', 'list', 'watch', 'create', 'patch', 'delete']));
    expect(verbsOn('', 'pods').sort()).toEqual(['delete', 'get', 'list', 'watch']);
    expect(verbsOn('', 'pods/log')).toEqual(['get']);
    expect(verbsOn('networking.k8s.io', 'networkpolicies')).toContain('create');
  });

  it('reads Secrets only by name (no list or watch), and cannot exec, attach, port-forward, escalate or touch RBAC', () => {
    expect(verbsOn('', 'secrets').sort()).toEqual(['create', 'delete', 'get']);
    for (const sub of ['pods/exec', 'pods/attach', 'pods/portforward', 'pods/ephemeralcontainers', 'serviceaccounts/token']) expect(verbsOn('', sub)).toEqual([]);
    expect(rules.some((r) => r.apiGroups.includes('rbac.authorization.k8s.io'))).toBe(false);
    expect(rules.flatMap((r) => r.verbs)).not.toEqual(expect.arrayContaining(['escalate']));
    expect(rules.flatMap((r) => r.verbs)).not.toEqual(expect.arrayContaining(['bind']));
  });
});

describe("the controller's Deployment", () => {
  const d = find(objects, 'Deployment', 'logomesh-controller');
  const spec = d.spec.template.spec;

  it('one replica, replaced not surged: never two hubs', () => {
    expect(d.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
  });

  it('keeps its home (audit trail, revocations) on its own claim, so a rescheduled controller keeps them', () => {
    const claim = find(objects, 'PersistentVolumeClaim', 'logomesh-controller-home');
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
    const home = spec.volumes.find((v: Obj) => v.name === 'home');
    expect(home.persistentVolumeClaim).toEqual({ claimName: 'logomesh-controller-home' });
    const env = Object.fromEntries(spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
    expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'home', mountPath: env.LOGOMESH_HOME });
  });

  it('leaves a lost node after 30 s instead of 300', () => {
    expect(spec.tolerations).toEqual([
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 },
    ]);
  });

  it('the hub Service selects the controller and exposes the plugin and client ports', () => {
    const svc = find(objects, 'Service', 'logomesh-hub');
    expect(svc.spec.selector).toEqual(d.spec.template.metadata.labels);
    expect(svc.spec.ports.map((p: Obj) => [p.name, p.port])).toEqual([['plugins', TARGET.hubPort], ['clients', TARGET.clientPort]]);
  });

  it('serves the validated manifests, defaults filled in, one key per plugin', () => {
    const cm = find(objects, 'ConfigMap', 'logomesh-manifests');
    expect(Object.keys(cm.data)).toEqual(['fetcher.json', 'fetcher.objects.json', 'plain.json', 'plain.objects.json']);
    // Each plugin's own objects as rendered, for the controller in the cluster to apply: its Deployment last.
    const own = JSON.parse(cm.data['fetcher.objects.json']) as Obj[];
    expect(own.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['ConfigMap/lm-egress-fetcher', 'Service/lm-egress-fetcher', 'NetworkPolicy/lm-plugin-fetcher', 'NetworkPolicy/lm-egress-fetcher', 'Deployment/lm-egress-fetcher', 'Deployment/lm-plugin-fetcher']);
    expect(own.at(-1)).toEqual(find(objects, 'Deployment', 'lm-plugin-fetcher'));
    expect(JSON.parse(cm.data['plain.json'])).toMatchObject({ id: 'plain', resources: { maxMemoryMB: 128 }, restart: { policy: expect.any(String) } });
    expect(spec.volumes.find((v: Obj) => v.configMap)?.configMap.name).toBe('logomesh-manifests');
    expect(all(objects, 'ConfigMap').map((c) => c.metadata.name).sort()).toEqual(['lm-egress-fetcher', 'logomesh-manifests']);
  });
});

describe('the manifests ConfigMap', () => {
  it('refuses manifests that together pass what one ConfigMap holds, naming the largest (LM_KUBE_RENDER)', () => {
    // One author's huge manifest must not make the whole apply fail on the API server instead.
    const methods = Array.from({ length: 256 }, (_, i) => `m${String(i).padStart(3, '0')}_${'x'.repeat(58)}`);
    const big = fx.load(['big'], { big: { files: { 'main.py': '\n' }, manifest: `runtime: python\nentrypoint: main.py\ncoordination: { exposesMethods: [${methods.join(', ')}], consumesMethods: [${methods.map((m) => `other.${m}`).join(', ')}] }\n` } })[0]!;
    const size = JSON.stringify(big.manifest).length;
    const copies = Math.ceil(MAX_CONFIGMAP_DATA / size) + 1;
    const many = Array.from({ length: copies }, (_, i) => ({ ...big, manifest: { ...big.manifest, id: `big${i}` } }));
    const small = fx.load(['plain']);
    expect(() => manifestsConfigMap([...many, ...small], TARGET)).toThrow(expect.objectContaining({ code: 'LM_KUBE_RENDER', message: expect.stringMatching(/the largest is big\d+\.json/) }));
    expect(Object.keys(manifestsConfigMap([...many.slice(0, 2), ...small], TARGET).data!)).toEqual(['big0.json', 'big1.json', 'plain.json']);
  });
});
