import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { pluginFolders } from '../../src/manifest/folders.js';
import { loadManifest } from '../../src/manifest/index.js';
import { toYaml } from '../../src/kubernetes/render.js';
import { kubeTarget } from '../../src/kubernetes/target.js';
import { all, find, KubeFixtures, render } from './support/kube-fixtures.js';
import { PINNED_KUBERNETES, schemaErrors } from './support/kube-schemas.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());
const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'manifests');

describe(`every rendered object against the Kubernetes ${PINNED_KUBERNETES} OpenAPI schemas (offline)`, () => {
  const sets = {
    'the example plugins (manifests/)': () => render(pluginFolders(EXAMPLES).map((f) => loadManifest(f))),
    'the fixture plugins (network, level 3, extra syscall, grants)': () => render(fx.load(), fx.policy().policy),
    'the fixture plugins for arm64 nodes in another namespace': () => render(fx.load(), fx.policy().policy, kubeTarget({ namespace: 'team-b', arch: 'arm64', registry: 'registry.example.com:5000/lm' })),
  };

  it.each(Object.keys(sets))('%s', (name) => {
    const objects = sets[name as keyof typeof sets]();
    expect(objects.length).toBeGreaterThan(10);
    expect(objects.flatMap((o) => schemaErrors(o as never))).toEqual([]);
  });

  it('checks each kind it renders (no kind goes unvalidated)', () => {
    const kinds = new Set(render(fx.load(), fx.policy().policy).map((o) => `${o.apiVersion}/${o.kind}`));
    expect([...kinds].sort()).toEqual(
      [
        'apps/v1/Deployment',
        'networking.k8s.io/v1/NetworkPolicy',
        'node.k8s.io/v1/RuntimeClass',
        'rbac.authorization.k8s.io/v1/Role',
        'rbac.authorization.k8s.io/v1/RoleBinding',
        'security-profiles-operator.x-k8s.io/v1beta1/SeccompProfile',
        'v1/ConfigMap',
        'v1/Namespace',
        'v1/PersistentVolumeClaim',
        'v1/Service',
        'v1/ServiceAccount',
      ].sort(),
    );
  });

  it('the YAML stream parses back to exactly the objects, one document each', () => {
    const objects = render(fx.load(), fx.policy().policy);
    const docs = parseAllDocuments(toYaml(objects));
    expect(docs.map((d) => d.errors)).toEqual(objects.map(() => []));
    expect(docs.map((d) => d.toJS())).toEqual(JSON.parse(JSON.stringify(objects)));
  });
});

describe('the validators refuse what the API server refuses (so the check above can fail)', () => {
  const objects = () => render(fx.load(['plain']));
  const mutate = (f: (d: ReturnType<typeof find>) => void) => {
    const d = structuredClone(find(objects(), 'Deployment', 'lm-plugin-plain'));
    f(d);
    return schemaErrors(d);
  };

  it('a string where a boolean belongs', () => {
    expect(mutate((d) => (d.spec.template.spec.securityContext.runAsNonRoot = 'yes')).join('\n')).toMatch(/runAsNonRoot/);
  });

  it('an unknown seccomp profile type', () => {
    expect(mutate((d) => (d.spec.template.spec.securityContext.seccompProfile.type = 'Disabled')).join('\n')).toMatch(/seccompProfile\/type/);
  });

  it('a container without a name', () => {
    expect(mutate((d) => delete d.spec.template.spec.containers[0].name).join('\n')).toMatch(/name/);
  });

  it('a wrong apiVersion', () => {
    expect(mutate((d) => (d.apiVersion = 'apps/v1beta1')).length).toBeGreaterThan(0);
  });

  it('a SeccompProfile with an unknown field or action', () => {
    const p = structuredClone(all(objects(), 'SeccompProfile')[0]);
    p.spec.syscalls[0].comment = 'Docker-only field';
    expect(schemaErrors(p).join('\n')).toMatch(/additional properties/);
    const q = structuredClone(all(objects(), 'SeccompProfile')[0]);
    q.spec.defaultAction = 'SCMP_ACT_FORBID';
    expect(schemaErrors(q).join('\n')).toMatch(/defaultAction/);
  });
});
