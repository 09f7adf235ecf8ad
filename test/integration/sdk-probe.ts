import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isLogoMeshError } from '../../src/errors.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import type { Runtime } from '../../src/manifest/types.js';
import { docker, instance, REPO, tempDir } from './support.js';

/**
 * One SDK under the real controller and hub, with the SDK probe of its runtime
 * (test/fixtures/sdk-probe/): hello's subscriptions, the hub's announced maximum message
 * size, and a hello the hub refuses for an undeclared subscription. Called by each
 * sdk-<runtime>.test.ts.
 */

const PROBE = path.join(REPO, 'test', 'fixtures', 'sdk-probe');
const ENTRYPOINT: Record<Runtime, string> = { python: 'main.py', node: 'main.mjs', go: 'main.go', rust: 'main.rs' };
const RESOURCES: Record<Runtime, string> = {
  python: '{ maxMemoryMB: 64, maxCpuPercent: 50 }',
  node: '{ maxMemoryMB: 96, maxCpuPercent: 50, maxProcesses: 32 }',
  go: '{ maxMemoryMB: 32, maxCpuPercent: 50 }',
  rust: '{ maxMemoryMB: 32, maxCpuPercent: 50 }',
};
/** Small enough that a 70 000-letter event is over it: a limit only the hub's answer to hello tells the SDK. */
const MAX_MESSAGE_BYTES = 65_536;

/** A copy of the probe of `runtime` as plugin `id`, its manifest subscribing to `subscribes`. */
function probe(root: string, runtime: Runtime, id: string, subscribes: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir);
  cpSync(path.join(PROBE, runtime), dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      `runtime: ${runtime}`,
      `entrypoint: ${ENTRYPOINT[runtime]}`,
      `resources: ${RESOURCES[runtime]}`,
      'coordination:',
      '  exposesMethods: [heard, emit_sized]',
      '  messaging: true',
      '  publishes: [probe.*]',
      `  subscribes: [${subscribes.join(', ')}]`,
      'restart: { policy: never }',
      '',
    ].join('\n'),
  );
}

export function describeProbe(runtime: Runtime): void {
  describe(`the ${runtime} SDK under the real controller and hub (the SDK probe)`, () => {
    const id = `probe-${runtime}`;
    const undeclared = `probe-${runtime}-undeclared`;
    let host: Controller;

    beforeAll(async () => {
      const root = tempDir(`lm-${id}-`);
      probe(root, runtime, id, ['probe.*']);
      probe(root, runtime, undeclared, ['probe.other']);
      const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-probe-home-'), LOGOMESH_INSTANCE: `${instance()}-${id}` });
      host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 3_000, maxMessageBytes: MAX_MESSAGE_BYTES });
      host.loadDirectory(root);
    }, 600_000);
    afterAll(async () => {
      await host?.close();
    });

    it('hears an event published the moment it is ready: hello subscribed its pattern', async () => {
      await host.start(id);
      // No wait of any kind: hello's subscriptions were in place before the plugin was ready.
      host.emit('probe.ping', 'right after ready');
      await vi.waitFor(async () => expect(await host.call(id, 'heard', {})).toEqual([{ topic: 'probe.ping', from: 'host', data: 'right after ready' }]), { timeout: 10_000, interval: 50 });
    }, 600_000);

    it("holds what it sends to the maximum message size the hub announced in hello's answer", async () => {
      const seen: unknown[] = [];
      const off = host.on('probe.out', (data) => seen.push(data));
      try {
        // Refused by the SDK itself, before sending: without the announced size it would have
        // sent it (16 MiB is its limit until then), and emit would have returned.
        expect(await host.call(id, 'emit_sized', { bytes: 70_000 })).toBe('LM_MESSAGE_TOO_LARGE');
        expect(await host.call(id, 'emit_sized', { bytes: 60_000 })).toBe('sent');
        await vi.waitFor(() => expect(seen).toEqual(['x'.repeat(60_000)]), { timeout: 10_000, interval: 50 });
      } finally {
        off();
      }
    });

    it('a hello naming a pattern its manifest does not declare is refused: the plugin exits 1 and says why', async () => {
      const err = await host.start(undeclared).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isLogoMeshError(err) && err.code, String(err)).toBe('LM_PLUGIN_EXITED');
      const message = (err as Error).message;
      expect(message).toContain('exited with code 1 before it became ready');
      expect(message).toContain(`LM_PERMISSION_DENIED: plugin ${undeclared} may not subscribe to 'probe.*': no pattern under coordination.subscribes covers it (listed: probe.other)`);
      expect(host.status(undeclared).methods).toEqual([]);
    }, 600_000);
  });
}
