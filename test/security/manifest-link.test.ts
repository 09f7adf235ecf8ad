import { chownSync, linkSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManifestRejectedError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { instance } from '../integration/support.js';
import { attack, copyAttack } from './support.js';

type Attempt = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Issue 12: a write grant over a folder holding a hard link to the manifest let a running
 * plugin rewrite its own manifest for its next start. The loader refuses a manifest with a
 * second name; these show that a plugin cannot make that name itself, in a real container.
 */
describe('a plugin and a second name for its manifest', () => {
  it('cannot link its manifest into its write grant (EXDEV), nor write or move it', async () => {
    let manifest = '';
    const { report } = await attack<Record<string, Attempt>>('hard-link-manifest', (dir) => {
      chownSync(path.join(dir, 'out'), pluginUid(instance(), 'attack-hard-link-manifest'), pluginGid(instance(), 'attack-hard-link-manifest'));
      manifest = readFileSync(path.join(dir, 'plugin.yaml'), 'utf8');
    });
    expect(report).toEqual({
      linkManifest: { ok: false, error: 'EXDEV' },
      linkEntrypoint: { ok: false, error: 'EXDEV' },
      // The manifest is root's and 0644: permission fails before the read-only mount would.
      writeManifest: { ok: false, error: 'EACCES' },
      renameIntoOut: { ok: false, error: 'EXDEV' },
      // Links inside the grant work: the refusal is the mount boundary, not a ban on links.
      linkInsideOut: { ok: true, value: 'x' },
    });
    expect(manifest).toContain('attack-hard-link-manifest');
  });

  it('one made on the host is refused at load, before any container exists', () => {
    const dir = copyAttack('hard-link-manifest');
    linkSync(path.join(dir, 'plugin.yaml'), path.join(dir, 'out', 'plugin.yaml'));
    const err = (() => {
      try {
        loadManifest(dir);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ManifestRejectedError);
    expect((err as ManifestRejectedError).issues[0]).toMatchObject({ code: 'LM_MANIFEST_FILE', found: 'a file with 2 names (hard links)' });
  });
});
