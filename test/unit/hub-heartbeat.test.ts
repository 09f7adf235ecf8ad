import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';

/** The hub's heartbeat: skipped for a connection a health probe proved alive, never for one that was not. */

const policy = (id: string): PluginPolicy => ({ id, exposes: new Set(['echo']), consumes: new Set(), messaging: false, publishes: [], subscribes: [] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INTERVAL = 150;

describe('the hub heartbeat', () => {
  let dir: string;
  let hub: Hub;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const clients: Client[] = [];

  const plugin = async (id: string, autoPong = true) => {
    await hub.attachPlugin(policy(id), path.join(dir, id, 'hub.sock'));
    const c = await Client.open(`ws+unix://${path.join(dir, id, 'hub.sock')}:/v1`, {}, { autoPong });
    clients.push(c);
    const r = await c.reply(c.send({ type: 'hello', protocol: 1, methods: ['echo'] }));
    expect(r.success).toBe(true);
    let pings = 0;
    c.ws.on('ping', () => pings++);
    return { c, pings: () => pings };
  };

  /** Probe like the supervisor's health pings, several per heartbeat interval, until stopped. */
  const probing = (id: string) => {
    let on = true;
    let probes = 0;
    let answered = 0;
    const done = (async () => {
      while (on) {
        probes++;
        if (await hub.ping(id, INTERVAL / 2)) answered++;
        await sleep(INTERVAL / 5);
      }
    })();
    return {
      probes: () => probes,
      answered: () => answered,
      stop: async () => {
        on = false;
        await done;
      },
    };
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-heartbeat-'));
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 't', pingIntervalMs: INTERVAL, audit: (e) => audit.push(e) });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('does not ping a plugin that answered a health probe since the last beat, and pings it again once probes stop', async () => {
    const p = await plugin('alpha');
    const idle = p.pings();
    await sleep(INTERVAL * 3.5);
    // Without probes: one heartbeat ping per interval.
    expect(p.pings() - idle).toBeGreaterThanOrEqual(2);
    const pr = probing('alpha');
    await sleep(INTERVAL);
    const before = p.pings();
    const probesBefore = pr.probes();
    await sleep(INTERVAL * 6);
    await pr.stop();
    const heartbeats = p.pings() - before - (pr.probes() - probesBefore);
    // Every beat in the window found a probe answered since the one before: none pinged (one at most, at the window's edges).
    expect(heartbeats).toBeLessThanOrEqual(1);
    expect(pr.answered()).toBe(pr.probes());
    const after = p.pings();
    await sleep(INTERVAL * 3.5);
    expect(p.pings() - after).toBeGreaterThanOrEqual(2);
    expect(hub.stats('alpha')?.connected).toBe(true);
  });

  it('still cuts off a plugin that answers neither probes nor heartbeats, probed all along', async () => {
    const p = await plugin('mute', false);
    const closed = new Promise<void>((resolve) => p.c.ws.once('close', () => resolve()));
    const pr = probing('mute');
    await closed;
    await pr.stop();
    expect(pr.answered()).toBe(0);
    expect(audit.find((e) => e.who === 'mute' && e.code === 'LM_UNHEALTHY')?.reason).toContain('did not answer 3 pings');
  });
});
