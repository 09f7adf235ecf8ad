import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { pluginFolders } from '../../src/manifest/folders.js';
import { loadManifest } from '../../src/manifest/index.js';
import { find, KubeFixtures, render } from './support/kube-fixtures.js';
import { unknownFields } from './support/kube-fields.js';

const fx = new KubeFixtures();
const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'manifests');
afterAll(() => fx.remove());

describe('no rendered object carries a field its Kubernetes type does not declare', () => {
  it('the fixture plugins and the examples', () => {
    const objects = [...render(fx.load(), fx.policy().policy), ...render(pluginFolders(EXAMPLES).map((f) => loadManifest(f)))];
    expect(unknownFields(objects)).toEqual([]);
  }, 60_000);

  // TypeScript reports the first unknown field of a literal it meets, so each misspelling is checked alone.
  it.each([
    ['the Pod spec', (d: ReturnType<typeof find>) => (d.spec.template.spec.automountServiceAcountToken = false), /Deployment lm-plugin-plain: .*'"automountServiceAcountToken"'/],
    ['a container', (d: ReturnType<typeof find>) => (d.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true), /'"readOnlyRootFileSystem"' does not exist in type 'ISecurityContext'/],
    ['a volume', (d: ReturnType<typeof find>) => (d.spec.template.spec.volumes[0].emptyDir.sizelimit = '1Mi'), /'"sizelimit"'/],
  ])('a misspelt field in %s is caught (so the check above can fail)', (_where, spoil, message) => {
    const d = structuredClone(find(render(fx.load(['plain'])), 'Deployment', 'lm-plugin-plain'));
    spoil(d);
    expect(unknownFields([d]).join('\n')).toMatch(message);
  }, 60_000);
});
