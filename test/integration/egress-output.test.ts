import { describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { python } from '../../src/runtimes/python.js';
import { ProxyOutput } from '../../src/sandbox/egress/proxy-output.js';
import { waitFor } from './egress-support.js';
import { docker, instance, sleep } from './support.js';

/**
 * Following a proxy's decisions when the engine goes away and comes back (the stream ends,
 * the proxy runs on under live-restore): following again loses no line and repeats none. A
 * container numbering its lines stands for the proxy; the stream is ended as an engine
 * restart ends it (the engine itself is shared, and restarted only by test/engine).
 */
describe("a proxy's output, followed again after the stream ended", () => {
  it('goes on from the line after the last one seen: none lost, none twice', async () => {
    const d = await docker();
    const c = await d.createContainer({
      Image: python.tag,
      Cmd: ['python3', '-u', '-c', 'import json, time\nfor i in range(400):\n    print(json.dumps({"n": i}), flush=True)\n    time.sleep(0.01)\ntime.sleep(60)'],
      Labels: ownerLabels('test', instance()),
      HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], ReadonlyRootfs: true, Init: true },
    });
    try {
      await c.start();
      const seen: number[] = [];
      let ends = 0;
      const output = new ProxyOutput(d, c, silentLogger, { line: (o) => seen.push(o.n as number), ended: () => ends++ });
      await output.follow();
      await waitFor('the first lines', 20_000, () => (seen.length >= 50 ? true : undefined));
      output.interrupt();
      await waitFor('the stream to end', 5_000, () => (ends === 1 ? true : undefined));
      const before = seen.length;
      // Lines go on meanwhile: the proxy keeps running while the engine is away.
      await sleep(1_000);
      expect(seen.length).toBe(before);
      await output.follow();
      await waitFor('every line', 30_000, () => (seen.length >= 400 ? true : undefined));
      await sleep(200);
      expect(seen).toEqual(Array.from({ length: 400 }, (_, i) => i));
    } finally {
      await ignoreGone(c.remove({ force: true }));
    }
  });
});
