import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { changesBetween, fingerprintOf, type Fingerprint } from '../../src/controller/deploy/fingerprint.js';
import { planDeploy, type PlanInput } from '../../src/controller/deploy/plan.js';
import { loadManifest } from '../../src/manifest/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'lm-plan-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(id: string, yaml = '', files: Record<string, string> = { 'main.py': 'print(1)\n' }): string {
  const dir = path.join(root, `${id}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n${yaml}`);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

const fp = (dir: string, policy = '') => fingerprintOf(loadManifest(dir), policy);

describe('what apply counts as a change (fingerprint)', () => {
  it('names the manifest fields, the files, the signature and the policy that changed', () => {
    const a = fp(folder('p', 'resources: { maxMemoryMB: 64 }\n', { 'main.py': 'v1\n', 'lib/util.py': 'u\n' }));
    const b = fp(folder('p', 'resources: { maxMemoryMB: 96 }\ncoordination: { exposesMethods: [go] }\n', { 'main.py': 'v2\n', 'new.py': 'n\n', 'plugin.sig': 'x' }), 'abc');
    expect(changesBetween(a, b)).toEqual(['manifest: coordination.exposesMethods, resources.maxMemoryMB', 'files: main.py changed, new.py added, lib/util.py removed', 'signature added', 'policy']);
  });

  it('does not count a comment in the manifest, byte-code caches or version control', () => {
    const a = fp(folder('p', '', { 'main.py': 'x\n' }));
    const b = fp(folder('p', '# a comment\n', { 'main.py': 'x\n', '__pycache__/main.cpython-311.pyc': 'junk', '.git/HEAD': 'ref' }));
    expect(changesBetween(a, b)).toEqual([]);
  });
});

describe('planDeploy', () => {
  const input = (id: string, dependsOn: string[] = [], version = '1'): PlanInput => ({ id, dependsOn, fingerprint: { manifestHash: `${id}-m`, manifest: {} as Fingerprint['manifest'], files: { 'main.py': version }, policy: '' } });

  it('adds and replaces a dependency level at a time, then removes dependents first', () => {
    const current = [input('db'), input('api', ['db']), input('old'), input('older', ['old'])];
    const desired = [input('db', [], '2'), input('api', ['db']), input('web', ['api'])];
    const plan = planDeploy(current, desired, true);
    expect(plan).toMatchObject({ added: ['web'], changed: [{ id: 'db', what: ['files: main.py changed'] }], unchanged: ['api'], removed: ['old', 'older'], kept: [] });
    expect(plan.steps.map((s) => `${s.action} ${s.id}`)).toEqual(['replace db', 'add web', 'remove older', 'remove old']);
  });

  it('without prune keeps what the folder lacks, and its dependents still order the steps', () => {
    const plan = planDeploy([input('base'), input('top', ['base'])], [input('base', [], '2')], false);
    expect(plan).toMatchObject({ kept: ['top'], removed: [], changed: [{ id: 'base' }] });
    expect(plan.steps).toEqual([{ action: 'replace', id: 'base' }]);
  });

  it('refuses a new set with a missing dependency (LM_DEPENDENCY)', () => {
    expect(() => planDeploy([], [input('lonely', ['ghost'])], false)).toThrow(expect.objectContaining({ code: 'LM_DEPENDENCY' }));
  });
});
