import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ensureImage } from '../../src/images/build.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { EGRESS_IMAGE } from '../../src/sandbox/egress.js';
import { docker, instance } from './support.js';

/**
 * The proxy's own checks (request heads, Host and framing, allow-list matching, forbidden
 * addresses, the reporting budget, DNS messages), unit-tested by images/egress/tests in the
 * proxy's image, with its Python, and no network.
 */
describe('the egress proxy, unit by unit, in its image', () => {
  it('passes its Python unit tests', async () => {
    const d = await docker();
    const image = await ensureImage(d, EGRESS_IMAGE, { log: silentLogger });
    const c = await d.createContainer({
      Image: image.tag,
      Cmd: ['python3', '-m', 'unittest', 'discover', '-v', '-s', '/tests'],
      WorkingDir: '/opt/logomesh/egress',
      Env: ['PYTHONPATH=/opt/logomesh/egress', 'PYTHONDONTWRITEBYTECODE=1'],
      Labels: ownerLabels('test', instance()),
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=16m' },
        CapDrop: ['ALL'],
        Mounts: [{ Type: 'bind', Source: path.join(EGRESS_IMAGE.contextDir, 'tests'), Target: '/tests', ReadOnly: true }],
      },
    });
    try {
      const out = new PassThrough();
      let text = '';
      out.on('data', (b: Buffer) => (text += b.toString()));
      const stream = await c.attach({ stream: true, stdout: true, stderr: true });
      d.modem.demuxStream(stream, out, out);
      await c.start();
      const { StatusCode } = (await c.wait()) as { StatusCode: number };
      expect(StatusCode, text).toBe(0);
      expect(text).toMatch(/Ran \d+ tests/);
      expect(text).toMatch(/\nOK\s*$/);
    } finally {
      await ignoreGone(c.remove({ force: true }));
    }
  });
});
