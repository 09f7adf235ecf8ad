import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import type { Docker } from '../../src/engine/docker.js';
import { ownerLabels } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { python } from '../../src/runtimes/python.js';
import { Egress, type EgressDecision } from '../../src/sandbox/egress.js';
import { ProxyOutput } from '../../src/sandbox/egress/proxy-output.js';
import { networkPlugin, PROXY_HELPERS, startPlugin, Targets, waitFor } from './egress-support.js';
import { docker, instance, sleep, tempDir } from './support.js';

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

/**
 * The engine answering for everything but signals to containers: what a revocation meets
 * while the engine is away (the shared engine itself is restarted only by test/engine).
 */
function withSignalsFailing(d: Docker, failing: { now: boolean }): Docker {
  const wrap = (c: Dockerode.Container): Dockerode.Container =>
    new Proxy(c, { get: (t, p, r) => (p === 'kill' && failing.now ? () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')) : Reflect.get(t, p, r) as unknown) });
  return new Proxy(d, {
    get: (t, p, r) => (p === 'createContainer' ? async (...a: Parameters<Docker['createContainer']>) => wrap(await t.createContainer(...a)) : Reflect.get(t, p, r) as unknown),
  });
}

describe('a revocation made while the engine cannot signal the proxy', () => {
  it('cuts the tunnel still open to the revoked host once the engine is back', async () => {
    const targets = new Targets();
    const web = `lm-${instance()}-away-web`;
    const failing = { now: false };
    const decisions: EgressDecision[] = [];
    await targets.start('away-targets', [web]);
    const egress = await Egress.start({ docker: withSignalsFailing(await docker(), failing), instance: instance(), log: silentLogger, configDir: tempDir('lm-egress-away-'), networks: [targets.network!.id] });
    egress.onDecision((d) => decisions.push(d));
    let client: Dockerode.Container | undefined;
    try {
      const main = `${PROXY_HELPERS}
s, status = tunnel("${web}", 7000)
say(held=status)
s.settimeout(60)
try:
    how = "eof" if s.recv(64) == b"" else "data"
except OSError:
    how = "reset"
say(ended=how)
time.sleep(60)
`;
      const loaded = loadManifest(networkPlugin('away', [`${web}:7000`], 2, main));
      const attachment = await egress.attach('away', loaded.manifest);
      const started = await startPlugin(loaded, attachment);
      client = started.container;
      expect(await waitFor('the tunnel', 20_000, () => started.lines.find((l) => l.held))).toMatchObject({ held: 200 });

      failing.now = true;
      expect(await egress.revokeHost('away', `${web}:7000`)).toBe(true);
      // Not signalled: the open tunnel stays until the proxy reloads.
      await sleep(500);
      expect(started.lines.find((l) => l.ended)).toBeUndefined();
      expect(decisions.filter((d) => d.result === 'cut')).toEqual([]);

      failing.now = false;
      await egress.engineBack();
      expect(decisions).toContainEqual(expect.objectContaining({ plugin: 'away', host: web, port: 7000, result: 'cut', reason: 'revoked' }));
      expect(await waitFor('the tunnel to end', 5_000, () => started.lines.find((l) => l.ended))).toMatchObject({ ended: expect.stringMatching(/^(eof|reset)$/) });
    } finally {
      if (client) await ignoreGone(client.remove({ force: true }));
      await egress.close();
      await targets.remove();
    }
  });
});
