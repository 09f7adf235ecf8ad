import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { LABEL } from '../../src/labels.js';
import { loadManifest } from '../../src/manifest/index.js';
import { loadPolicy } from '../../src/policy/policy.js';
import { generateKeyFiles } from '../../src/signing/keys.js';
import { signedContentOf, signPlugin, verifyPlugin } from '../../src/signing/signature.js';
import { docker, runCaptured, tempDir } from '../integration/support.js';

/**
 * A compiled plugin's image is built from one snapshot of its folder: the files hashed (and
 * compared with the signature) are the files compiled, and the tag is the snapshot's hash.
 * Real builds with the Go builder; the swaps are made between fixed steps.
 */

const main = (word: string) => `package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("${word}")\n}\n`;

function signedGoPlugin(id: string): { dir: string; policy: ReturnType<typeof loadPolicy> } {
  const keys = tempDir('lm-keys-');
  const key = generateKeyFiles(path.join(keys, 'release'));
  writeFileSync(path.join(keys, 'policy.yaml'), 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
  const dir = path.join(tempDir('lm-go-'), id);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: go\nentrypoint: main.go\nresources: { maxMemoryMB: 32 }\n`);
  writeFileSync(path.join(dir, 'main.go'), main('signed'));
  signPlugin(dir, key.keyFile);
  return { dir, policy: loadPolicy(path.join(keys, 'policy.yaml')) };
}

describe('a compiled plugin is built from the snapshot that was hashed', () => {
  it('a source swapped after the signature check but before the build is refused with LM_SIGNATURE, and nothing is built', async () => {
    const { dir, policy } = signedGoPlugin('swap-before-build');
    const loaded = loadManifest(dir);
    const signed = signedContentOf(verifyPlugin(loaded, policy));
    writeFileSync(path.join(dir, 'main.go'), main('unsigned'));
    const err = await runCaptured(dir, { policy, ...(signed ? { signed } : {}) }).catch((e: unknown) => e);
    expect((err as LogoMeshError).code).toBe('LM_SIGNATURE');
    expect((err as LogoMeshError).message).toBe(`${dir}: plugin swap-before-build refused: files changed between the signature check and the build: main.go changed`);
    const images = await (await docker()).listImages({ filters: JSON.stringify({ label: [`${LABEL.plugin}=swap-before-build`] }) });
    expect(images).toEqual([]);
  });

  it('a source swapped right after the snapshot changes nothing: the image holds the signed code, tagged with the snapshot hash', async () => {
    const { dir, policy } = signedGoPlugin('swap-after-snapshot');
    const signed = signedContentOf(verifyPlugin(loadManifest(dir), policy));
    let snapshotHash = '';
    const run = await runCaptured(dir, {
      policy,
      ...(signed ? { signed } : {}),
      hooks: {
        afterSnapshot: (snapshot) => {
          snapshotHash = snapshot.sha256;
          writeFileSync(path.join(dir, 'main.go'), main('unsigned'));
        },
      },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe('signed');
    const d = await docker();
    const [image] = await d.listImages({ filters: JSON.stringify({ label: [`${LABEL.plugin}=swap-after-snapshot`] }) });
    expect(image?.RepoTags?.[0]).toMatch(/^logomesh\/plugin-swap-after-snapshot:[0-9a-f]{16}$/);
    expect(snapshotHash).toMatch(/^[0-9a-f]{64}$/);
    // And the folder as it is now (unsigned main.go) is refused before any build.
    expect(() => verifyPlugin(loadManifest(dir), policy)).toThrow(/main\.go changed/);
    if (image) await d.getImage(image.Id).remove({ force: true });
  });
});
