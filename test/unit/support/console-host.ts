import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../../src/audit/audit-log.js';
import type { ConsoleHost } from '../../../src/console/host.js';
import type { PluginStatus, StatsRow } from '../../../src/controller/types.js';
import { LogoMeshError } from '../../../src/errors.js';
import type { LoadedManifest } from '../../../src/manifest/types.js';
import type { CallSnapshot } from '../../../src/monitor/call-stats.js';

/** What the fake was asked to do, in order. */
export type Done = [string, ...unknown[]];

/**
 * A stand-in controller for the console's unit tests and its 200-plugin measurement: `n`
 * plugins, each consuming the next one's `work` method, with usage that changes each read.
 * A real audit trail (in a temp folder) so searches and the chain check are real.
 */
export function fakeConsoleHost(n: number, opts: { monitor?: boolean } = {}): { host: ConsoleHost; done: Done[]; calls: CallSnapshot[]; revoked: Set<string>; close(): Promise<void> } {
  const done: Done[] = [];
  const revoked = new Set<string>();
  const calls: CallSnapshot[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-console-unit-'));
  const audit = new AuditLog(path.join(dir, 'audit.jsonl'));
  const ids = Array.from({ length: n }, (_, i) => `plugin-${String(i).padStart(3, '0')}`);
  let tick = 0;
  const status = (id: string): PluginStatus => {
    if (!ids.includes(id)) throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `no plugin ${id} is loaded`, { found: id });
    return { id, version: '1.0.0', runtime: 'node', state: 'ready', methods: ['work'], droppedMessages: 0, restarts: 0, uid: 20000 };
  };
  const manifest = (id: string, i: number) =>
    ({ manifest: { id, coordination: { exposesMethods: ['work'], consumesMethods: [`${ids[(i + 1) % n]}.work`] } } }) as unknown as LoadedManifest;
  const host: ConsoleHost = {
    list: () => ids.map(status),
    status,
    stats: (): StatsRow[] => {
      if (opts.monitor === false) throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', 'the resource monitor needs root', {});
      tick++;
      return ids.map((id, i) => ({
        usage: { pluginId: id, timestamp: Date.now(), memory: { used: (10 + ((i + tick) % 20)) * 1048576, peak: 40 * 1048576, limit: 64 * 1048576 }, cpu: { percent: (i + tick) % 25, limit: 25 }, io: { fileHandles: 12, networkConnections: 0, diskReadBytes: 0, diskWriteBytes: 0 }, violations: [] },
        processes: { current: 3, limit: 32 },
      }));
    },
    manifests: () => ids.map(manifest),
    logs: (id) => (status(id), [{ stream: 'stdout', time: 1, text: '<img src=x onerror=alert(1)>' }]),
    followLogs: () => () => undefined,
    start: async (id) => void done.push(['start', id]),
    stop: async (id) => void done.push(['stop', id]),
    restart: async (id) => void done.push(['restart', id]),
    revokeMethod: (id, method, who) => {
      status(id);
      revoked.add(`${id}|${method}`);
      done.push(['revokeMethod', id, method, who]);
      audit.record({ who: who ?? 'operator', action: 'revoke', resource: `${id}:${method}`, result: 'revoked' });
    },
    grantMethod: (id, method, ttl, who) => void done.push(['grantMethod', id, method, ttl, who]),
    revokeHost: async (id, h) => (done.push(['revokeHost', id, h]), true),
    grantHost: async (id, h) => void done.push(['grantHost', id, h]),
    revokePath: async (id, p, who) => (done.push(['revokePath', id, p, who]), { name: 'data', hostPath: p }) as never,
    grantPath: async (id, p) => (done.push(['grantPath', id, p]), { name: 'data', hostPath: p }) as never,
    setLimits: async (id, change, who) => (done.push(['setLimits', id, change, who]), []),
    audit,
    grants: { isMethodRevoked: (id, m) => revoked.has(`${id}|${m}`), revokedHosts: () => [] },
    metrics: { callSnapshot: () => calls },
  };
  return { host, done, calls, revoked, close: async () => {
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  } };
}
