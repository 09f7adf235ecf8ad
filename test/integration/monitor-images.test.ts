import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { ownerLabels } from '../../src/labels.js';
import { ensureImage } from '../../src/images/build.js';
import { silentLogger } from '../../src/log.js';
import { availableRuntimes } from '../../src/runtimes/index.js';
import { EGRESS_IMAGE } from '../../src/sandbox/egress.js';
import { docker, instance } from './support.js';

/**
 * CIS Docker Benchmark 4.8: no setuid or setgid file in any runtime image, so no process in
 * a plugin container can gain privileges from one (no-new-privileges stops that too: this is
 * the second layer). Checked in a real container of each image: `find` where the image has
 * one, and the exported file system's modes where it has none (the Go run image is empty).
 */
const created: Dockerode.Container[] = [];
afterAll(async () => {
  for (const c of created.splice(0)) await c.remove({ force: true }).catch(() => undefined);
});

const tags = [...new Set(availableRuntimes().flatMap((r) => r.images.map((i) => i.tag))), EGRESS_IMAGE.tag];

/** Files with a setuid or setgid bit in a tar stream (the engine's export of a container). */
function privilegedFiles(tar: Buffer): string[] {
  const found: string[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.toString('latin1', 0, 100).replace(/\0.*$/s, '');
    const mode = parseInt(header.toString('latin1', 100, 108).replace(/\0.*$/s, '').trim() || '0', 8);
    const size = parseInt(header.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 48);
    if ((type === '0' || type === '\0') && (mode & 0o6000) !== 0) found.push(name);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return found;
}

describe('runtime images: no setuid or setgid files (CIS 4.8)', () => {
  it.each(tags)('%s', async (tag) => {
    const d = await docker();
    // The global setup builds the runtimes' images; the egress proxy's is built on first use.
    if (tag === EGRESS_IMAGE.tag) await ensureImage(d, EGRESS_IMAGE, { log: silentLogger });
    const image = await d.getImage(tag).inspect();
    // The empty Go run image has no find (its PATH is /opt/logomesh only).
    const hasShell = image.Config.Env?.some((e) => e.startsWith('PATH=') && e.includes('/usr/bin')) === true;
    const c = await d.createContainer({
      Image: tag,
      Entrypoint: hasShell ? ['find', '/', '-xdev', '-perm', '/6000', '-type', 'f'] : ['/nothing'],
      Cmd: [],
      User: '0:0',
      Labels: ownerLabels('test', instance()),
      // Root with the engine's default capabilities, so find can read every folder of the image.
      HostConfig: { NetworkMode: 'none' },
    });
    created.push(c);
    if (hasShell) {
      const stream = await c.attach({ stream: true, stdout: true, stderr: true });
      const out = new PassThrough();
      const err = new PassThrough();
      const chunks: Buffer[] = [];
      const errors: Buffer[] = [];
      out.on('data', (b: Buffer) => chunks.push(b));
      err.on('data', (b: Buffer) => errors.push(b));
      d.modem.demuxStream(stream, out, err);
      await c.start();
      const { StatusCode } = (await c.wait()) as { StatusCode: number };
      await new Promise((r) => setTimeout(r, 100));
      const text = Buffer.concat(chunks).toString('utf8').trim();
      expect(text, `setuid/setgid files in ${tag}`).toBe('');
      expect(Buffer.concat(errors).toString('utf8')).toBe('');
      expect(StatusCode).toBe(0);
    } else {
      const stream = await c.export();
      const chunks: Buffer[] = [];
      for await (const b of stream as AsyncIterable<Buffer>) chunks.push(b);
      const tar = Buffer.concat(chunks);
      expect(tar.length).toBeGreaterThan(1024);
      expect(privilegedFiles(tar), `setuid/setgid files in ${tag}`).toEqual([]);
    }
  });

  it('the tar check finds a setuid file where there is one', () => {
    const header = Buffer.alloc(512);
    header.write('usr/bin/su', 0, 'latin1');
    header.write('0004755\0', 100, 'latin1');
    header.write('00000000000\0', 124, 'latin1');
    header.write('0', 156, 'latin1');
    expect(privilegedFiles(Buffer.concat([header, Buffer.alloc(1024)]))).toEqual(['usr/bin/su']);
  });
});
