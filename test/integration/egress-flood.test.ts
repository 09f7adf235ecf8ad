import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { Egress, type EgressDecision } from '../../src/sandbox/egress.js';
import { networkPlugin, PROXY_HELPERS, startPlugin, Targets, waitFor } from './egress-support.js';
import { docker, instance, report, runCaptured, tempDir } from './support.js';

/** Connections the flooder keeps open (or trying), and its bounds in all: connections and seconds. */
// More than the 1024 threads that starved every plugin of the shared proxy before (issue 10).
const FLOOD = 1200;
const FLOOD_TOTAL = 8000;
const FLOOD_SECONDS = 60;
const FLOODER_MAX = 16;
const VICTIM_REQUESTS = 30;

/**
 * One plugin floods its proxy with half-sent requests (one byte every 2 s, the pace that
 * kept a connection open forever before), far past its connection limit, opening a new one
 * for each that ends, while another plugin of the same controller makes its allowed
 * requests. The flood goes on until the test has seen what it waits for, and stops on
 * SIGUSR1; bounded by FLOOD_TOTAL connections and FLOOD_SECONDS.
 */
describe('a flooding plugin cannot take the network from another', () => {
  const targets = new Targets();
  const allowed = `lm-${instance()}-flood-target`;
  let egress: Egress;
  const decisions: EgressDecision[] = [];
  const audit: Omit<AuditEntry, 'time'>[] = [];

  beforeAll(async () => {
    await targets.start('flood-targets', [allowed]);
    egress = await Egress.start({ docker: await docker(), instance: instance(), log: silentLogger, configDir: tempDir('lm-egress-flood-'), audit: (e) => audit.push(e), networks: [targets.network!.id] });
    egress.onDecision((d) => decisions.push(d));
  });

  afterAll(async () => {
    await egress?.close();
    await targets.remove();
  });

  const flooder = `${PROXY_HELPERS}
import signal
N, TOTAL, SECONDS = ${FLOOD}, ${FLOOD_TOTAL}, ${FLOOD_SECONDS}
stop = []
signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))
conns, answers, opened = [], {}, [0]

def open_one():
    opened[0] += 1
    try:
        s = socket.create_connection((proxy.hostname, proxy.port), timeout=5)
        s.sendall(b"C")
        s.setblocking(False)
        conns.append((s, time.monotonic()))
    except OSError:
        answers.setdefault("connect-error", []).append(0)

def fill():
    while len(conns) < N and opened[0] < TOTAL:
        open_one()

def counts():
    return {k: len(v) for k, v in answers.items()}

t0 = time.monotonic()
fill()
say(flooding=True, opened=opened[0], openMs=round((time.monotonic() - t0) * 1000))
end = t0 + SECONDS
while not stop and time.monotonic() < end:
    for c in list(conns):
        s, since = c
        try:
            got = s.recv(4096)
            answer = str(int(got.split(b" ")[1])) if got.startswith(b"HTTP/") else "closed"
        except BlockingIOError:
            try:
                s.send(b"O")  # one more byte of a request that never ends
                continue
            except OSError:
                answer = "reset"
        except OSError:
            answer = "reset"
        answers.setdefault(answer, []).append(round(time.monotonic() - since, 1))
        conns.remove(c)
        s.close()
    fill()
    say(progress=True, opened=opened[0], counts=counts())
    for _ in range(20):
        if stop:
            break
        time.sleep(0.1)
say(done=True, opened=opened[0], counts=counts(), open=len(conns), heldFor=sorted(set(answers.get("408", []))))
time.sleep(60)  # the test removes the container sooner
`;

  const victim = `${PROXY_HELPERS}
import urllib.request
results = []
for i in range(${VICTIM_REQUESTS}):
    t = time.monotonic()
    try:
        with urllib.request.urlopen("http://${allowed}:8080/", timeout=20) as r:
            status = r.status
    except Exception as e:
        status = type(e).__name__ + ": " + str(e)
    results.append([status, round((time.monotonic() - t) * 1000)])
    time.sleep(0.2)
print(json.dumps({"results": results}))
`;

  it('holds the flooder to its own connection limit and head deadline, audits the flood, and serves the other plugin throughout', async () => {
    const loaded = loadManifest(networkPlugin('flooder', [`${allowed}:8080`], FLOODER_MAX, flooder, '  maxFileHandles: 2048\n'));
    // The baseline: the same requests with no flood.
    const calm = await runCaptured(networkPlugin('victim', [`${allowed}:8080`], 2, victim), { egress });
    expect(calm.exitCode, calm.stderr).toBe(0);
    const calmMs = report<{ results: [number | string, number][] }>(calm.stdout).results.map(([, t]) => t).sort((a, b) => a - b);
    const attachment = await egress.attach('flooder', loaded.manifest);
    let flood: Dockerode.Container | undefined;
    try {
      const started = await startPlugin(loaded, attachment);
      flood = started.container;
      const flooding = await waitFor('the flood', 30_000, () => started.lines.find((l) => l.flooding));
      expect(flooding.opened).toBe(FLOOD);

      // While the flood holds: the other plugin's requests, one after another.
      const r = await runCaptured(networkPlugin('victim', [`${allowed}:8080`], 2, victim), { egress });
      expect(r.exitCode, r.stderr).toBe(0);
      const results = report<{ results: [number | string, number][] }>(r.stdout).results;
      expect(results.map(([status]) => status)).toEqual(Array(VICTIM_REQUESTS).fill(200));
      const ms = results.map(([, t]) => t).sort((a, b) => a - b);

      // The flooder's requests within its limit are ended at the head deadline (10 s), however slowly they trickle.
      const progress = await waitFor('half-sent requests ended at the deadline', 40_000, () =>
        started.lines.find((l) => l.progress && ((l.counts as Record<string, number>)['408'] ?? 0) >= FLOODER_MAX),
      );
      expect(started.lines.find((l) => l.done), 'the flood went on until the test stopped it').toBeUndefined();
      await flood.kill({ signal: 'SIGUSR1' });
      const done = await waitFor('the flood to stop', 10_000, () => started.lines.find((l) => l.done));
      const counts = done.counts as Record<string, number>;
      console.log(
        `egress flood: ${FLOOD} connections opened in ${String(flooding.openMs)} ms, ${String(done.opened)} in all; flooder saw ${JSON.stringify(counts)}, held ones ended after ${JSON.stringify(done.heldFor)} s; victim request p50 ${ms[ms.length >> 1]} ms, max ${ms[ms.length - 1]} ms (no flood: p50 ${calmMs[calmMs.length >> 1]} ms, max ${calmMs[calmMs.length - 1]} ms)`,
      );
      // Past its limit, refused at once; within it, held only until the deadline. Nothing else.
      expect(Object.keys(counts).sort()).toEqual(['408', '429']);
      expect(counts['408']).toBeGreaterThanOrEqual(FLOODER_MAX);
      // The deadline is 10 s; the flooder looks about every 2 s, later on a busy host: a generous bound.
      for (const held of done.heldFor as number[]) expect(held).toBeLessThan(30);
      expect(counts['408']! + counts['429']! + (done.open as number)).toBe(done.opened);
      expect(progress).toBeDefined();

      // Every connection of the flood is in the audit trail, once: most counted together.
      await ignoreGone(flood.remove({ force: true }));
      const mine = (reason: string) => decisions.filter((d) => d.plugin === 'flooder' && d.reason === reason);
      const total = (reason: string) => mine(reason).reduce((n, d) => n + (d.count ?? 1), 0);
      const reported = () => total('max-connections') + total('head-timeout') + total('incomplete-request');
      await waitFor('every connection reported', 10_000, () => (reported() === done.opened ? true : undefined));
      // Refused ones the flooder had not read yet when it stopped are in the proxy's count too.
      expect(total('max-connections')).toBeGreaterThanOrEqual(counts['429']!);
      expect(total('head-timeout')).toBe(counts['408']);
      expect(mine('max-connections').length).toBeLessThan(counts['429']! / 2);
      const lines = decisions.filter((d) => d.plugin === 'flooder').length;
      console.log(`egress flood: ${String(done.opened)} connections reported in ${lines} lines`);
      expect(audit).toContainEqual(expect.objectContaining({ who: 'flooder', result: 'denied', code: 'LM_EGRESS_DENIED', reason: expect.stringMatching(/^max-connections: \d+ times in [\d.]+ s, counted together/) }));
      expect(decisions.filter((d) => d.plugin === 'victim' && d.result === 'allowed')).toHaveLength(2 * VICTIM_REQUESTS);
      expect(decisions.filter((d) => d.plugin === 'victim' && d.result !== 'allowed')).toEqual([]);
    } finally {
      if (flood) await ignoreGone(flood.remove({ force: true }));
      await egress.detach('flooder');
    }
  });
});
