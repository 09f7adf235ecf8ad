import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManifestRejectedError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { enforcePolicy, policyViolations } from '../../src/policy/decisions.js';
import { loadPolicy } from '../../src/policy/policy.js';

/** coordination.publishes and .subscribes in the manifest, and the policy's topics ceilings. */

const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-topics-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function plugin(id: string, coordination: string) {
  const p = path.join(dir, `plugin-${++n}`);
  mkdirSync(p);
  writeFileSync(path.join(p, 'main.py'), 'print(1)\n');
  writeFileSync(path.join(p, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\ncoordination:\n${coordination}`);
  return p;
}

function policy(text: string) {
  const file = path.join(dir, `policy-${++n}.yaml`);
  writeFileSync(file, text);
  return loadPolicy(file);
}

function rejected(p: string): { path: string; expected?: string; found?: string }[] {
  try {
    loadManifest(p);
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestRejectedError);
    return (err as ManifestRejectedError).issues.map((i) => ({ path: i.path, expected: i.expected, found: i.found }));
  }
  throw new Error('accepted');
}

describe('declared topics', () => {
  it('loads publishes and subscribes as written', () => {
    const m = loadManifest(plugin('news', '  messaging: true\n  publishes: [news.flash, news.sport.*]\n  subscribes: ["*"]\n')).manifest;
    expect(m.coordination.publishes).toEqual(['news.flash', 'news.sport.*']);
    expect(m.coordination.subscribes).toEqual(['*']);
  });

  it('publishing needs messaging: true', () => {
    expect(rejected(plugin('quiet', '  publishes: [news.flash]\n'))).toEqual([{ path: '/coordination/messaging', expected: 'true when coordination.publishes lists topics (publishing is messaging)', found: 'false' }]);
  });

  it('refuses what is not a topic or pattern, naming the entry', () => {
    const issues = rejected(plugin('bad', '  messaging: true\n  publishes: ["news.*.x", "a..b", ""]\n  subscribes: ["thought.*", "x y"]\n'));
    expect(issues.map((i) => i.path)).toEqual(['/coordination/publishes/0', '/coordination/publishes/1', '/coordination/publishes/2', '/coordination/subscribes/1']);
  });

  it('the policy caps the topics a manifest may declare, per plugin or for all', () => {
    const p = policy(['signatures: { required: false }', 'topics: { publish: [news.*], subscribe: [news.*, thought.added] }', 'plugins:', '  trusted: { topics: { publish: ["*"] } }', ''].join('\n'));
    const ok = loadManifest(plugin('reader', '  subscribes: [news.sport.*, thought.added]\n'));
    expect(policyViolations(ok, p)).toEqual([]);
    const greedy = loadManifest(plugin('greedy', '  messaging: true\n  publishes: [news.flash, thought.added]\n  subscribes: ["*", thought.*]\n'));
    expect(policyViolations(greedy, p).map((v) => `${v.path} ${v.found} ${v.rule.split(' ')[1]}`)).toEqual([
      "/coordination/publishes/1 'thought.added' /topics/publish",
      "/coordination/subscribes/0 '*' /topics/subscribe",
      "/coordination/subscribes/1 'thought.*' /topics/subscribe",
    ]);
    expect(() => enforcePolicy(greedy, p)).toThrow(expect.objectContaining({ code: 'LM_POLICY_DENIED' }));
    const trusted = loadManifest(plugin('trusted', '  messaging: true\n  publishes: [anything.at.all]\n  subscribes: [news.x]\n'));
    expect(policyViolations(trusted, p)).toEqual([]);
  });
});
