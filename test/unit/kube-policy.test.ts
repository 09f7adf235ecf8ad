import { afterAll, describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { pluginName } from '../../src/kubernetes/names.js';
import { NO_POLICY } from '../../src/policy/policy.js';
import { all, find, KubeFixtures, render, type Obj } from './support/kube-fixtures.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());

function codeOf(fn: () => unknown): { code: string; details: Record<string, unknown>; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LogoMeshError);
    const e = err as LogoMeshError;
    return { code: e.code, details: e.details, message: e.message };
  }
  throw new Error('rendered');
}
const runtimeClass = (objects: Obj[], id: string) => find(objects, 'Deployment', pluginName(id)).spec.template.spec.runtimeClassName;

describe("the policy's effect on the render", () => {
  it('isolation level 3 runs under gVisor: runtimeClassName runsc, and its RuntimeClass (handler runsc) is rendered', () => {
    const objects = render(fx.load(['vault', 'plain']));
    expect(runtimeClass(objects, 'vault')).toBe('runsc');
    expect(runtimeClass(objects, 'plain')).toBeUndefined();
    expect(all(objects, 'RuntimeClass')).toEqual([expect.objectContaining({ metadata: expect.objectContaining({ name: 'runsc' }), handler: 'runsc' })]);
  });

  it('no RuntimeClass when no plugin needs one', () => {
    expect(all(render(fx.load(['plain'])), 'RuntimeClass')).toEqual([]);
  });

  it("the policy's isolation.runtime (and a plugin override) names the RuntimeClass; one of the cluster's is only referenced", () => {
    const { policy } = fx.policy('isolation: { runtime: kata }\nplugins:\n  plain: { isolation: { runtime: runsc } }\n');
    const objects = render(fx.load(['vault', 'plain', 'writer']), policy);
    expect(runtimeClass(objects, 'vault')).toBe('kata');
    expect(runtimeClass(objects, 'writer')).toBe('kata');
    expect(runtimeClass(objects, 'plain')).toBe('runsc');
    expect(all(objects, 'RuntimeClass').map((r) => r.metadata.name)).toEqual(['runsc']);
  });

  it('a level-3 plugin under a policy naming a plain runtime is refused (LM_POLICY_DENIED), as on Docker', () => {
    const { policy } = fx.policy('isolation: { runtime: runc }\n');
    const e = codeOf(() => render(fx.load(['vault']), policy));
    expect(e.code).toBe('LM_POLICY_DENIED');
    expect(e.details.path).toBe('/security/isolationLevel');
  });

  it("a host the policy does not allow is refused before anything is rendered", () => {
    const { policy } = fx.policy("hosts: ['api.example.com:443']\n");
    const e = codeOf(() => render(fx.load(['fetcher']), policy));
    expect(e.code).toBe('LM_POLICY_DENIED');
    expect(e.details.path).toBe('/capabilities/0/hosts/1');
    expect(e.details.found).toBe("'*.cdn.example.org:443'");
  });

  it('a resource above the policy ceiling is refused', () => {
    const { policy } = fx.policy('capabilities: { maxCpuPercent: 100 }\n');
    const e = codeOf(() => render(fx.load(['fetcher']), policy));
    expect(e.code).toBe('LM_POLICY_DENIED');
    expect(e.details).toMatchObject({ path: '/resources/maxCpuPercent', expected: 'at most 100', found: '150' });
  });

  it('an extra system call needs the policy; allowed, the plugin gets a profile of its own that allows it', () => {
    expect(codeOf(() => render(fx.load(['tracer']), NO_POLICY)).code).toBe('LM_POLICY_DENIED');
    const objects = render(fx.load(['tracer', 'plain']), fx.policy().policy);
    const profiles = all(objects, 'SeccompProfile');
    expect(profiles).toHaveLength(2);
    const ref = (id: string) => find(objects, 'Deployment', pluginName(id)).spec.template.spec.securityContext.seccompProfile.localhostProfile as string;
    const profileOf = (id: string) => profiles.find((p) => ref(id) === `operator/${p.metadata.name}.json`);
    expect(ref('tracer')).not.toBe(ref('plain'));
    const allowed = (p: Obj) => p.spec.syscalls.filter((r: Obj) => r.action === 'SCMP_ACT_ALLOW').flatMap((r: Obj) => r.names);
    expect(allowed(profileOf('tracer'))).toContain('perf_event_open');
    expect(allowed(profileOf('plain'))).not.toContain('perf_event_open');
    expect(profileOf('plain').spec.syscalls.find((r: Obj) => r.names.includes('perf_event_open')).action).toBe('SCMP_ACT_ERRNO');
  });

  it('requests and limits follow the manifest whatever the policy (the policy only refuses)', () => {
    const { policy } = fx.policy('capabilities: { maxCpuPercent: 400, maxMemoryMB: 1024 }\n');
    const c = find(render(fx.load(['fetcher']), policy), 'Deployment', pluginName('fetcher')).spec.template.spec.containers[0];
    expect(c.resources.limits).toEqual({ cpu: '1500m', memory: '96Mi' });
  });
});

describe('refusals', () => {
  it('two folders with the same plugin id: LM_PLUGIN_CONFLICT', () => {
    const a = fx.load(['plain']);
    const b = fx.load(['plain']);
    expect(codeOf(() => render([...a, ...b])).code).toBe('LM_PLUGIN_CONFLICT');
  });

  it('a dependency that is not rendered: LM_DEPENDENCY naming the field', () => {
    const loaded = fx.load(['app'], { app: { files: { 'main.py': '\n' }, manifest: 'runtime: python\nentrypoint: main.py\ndependencies: { plugins: [db] }\n' } });
    const e = codeOf(() => render(loaded));
    expect(e.code).toBe('LM_DEPENDENCY');
    expect(e.details).toMatchObject({ path: '/dependencies/plugins/0', found: "'db'" });
  });
});
