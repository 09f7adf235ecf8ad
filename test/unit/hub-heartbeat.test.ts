import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { HEARTBEAT_ROUNDS } from '../../src/hub/connections.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

/** The hub's heartbeat: skipped for a connection a health probe or an answered call proved alive, never for one that was not; spread over its interval. */

const policy = (id: string): PluginPolicy => ({ id, exposes: new Set(['echo']), consumes: new Set(), messaging: false, publishes: [], subscribes: [] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INTERVAL = 150;

describe('the hub heartbeat', () => {
  let hub: Hub;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const { sock, track } = hubHarness('lm-hub-heartbeat-', () => {
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 't', pingIntervalMs: INTERVAL, audit: (e) => audit.push(e) });
    return hub;
  });

  const plugin = async (id: string, autoPong = true) => {
    await hub.attachPlugin(policy(id), sock(id));
    const c = track(await Client.open(`ws+unix://${sock(id)}:/v1`, {}, { autoPong }));
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

  it('does not ping a plugin that answered its calls since the last beat, but does one that only sends answers nobody asked for', async () => {
    const busy = await plugin('busy');
    busy.c.serve((m) => m.data);
    const chatty = await plugin('chatty');
    let on = true;
    const calls = (async () => {
      while (on) {
        await hub.call('busy', 'echo', 1, 2_000);
        chatty.c.send({ type: 'response', correlationId: 'h-nothing', success: true, data: 1 });
        await sleep(INTERVAL / 6);
      }
    })();
    await sleep(INTERVAL);
    const [busyBefore, chattyBefore] = [busy.pings(), chatty.pings()];
    await sleep(INTERVAL * 5);
    on = false;
    await calls;
    // At most one at the window's edge for the plugin under calls; one a beat for the other.
    expect(busy.pings() - busyBefore).toBeLessThanOrEqual(1);
    expect(chatty.pings() - chattyBefore).toBeGreaterThanOrEqual(3);
    const after = busy.pings();
    await sleep(INTERVAL * 3.5);
    expect(busy.pings() - after).toBeGreaterThanOrEqual(2);
  });

  it('spreads the pings of many connections over the interval instead of sending them all at once', async () => {
    const peers = await Promise.all(Array.from({ length: HEARTBEAT_ROUNDS }, (_, i) => plugin(`many-${i}`)));
    const first: number[] = [];
    await Promise.all(peers.map((p) => new Promise<void>((resolve) => p.c.ws.once('ping', () => resolve(void first.push(performance.now()))))));
    // One round each (consecutive connections take consecutive rounds): the pings leave over most of an interval, not in one turn.
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(INTERVAL / 3);
    // Still one ping an interval for each.
    const counts = peers.map((p) => p.pings());
    await sleep(INTERVAL * 3.2);
    peers.forEach((p, i) => expect(p.pings() - counts[i]!).toBeGreaterThanOrEqual(2));
  });

  it('knows a plugin answered one of its own calls just now (what lets the supervisor skip its health ping), never from an answer to no open call', async () => {
    const p = await plugin('gamma');
    expect(hub.answeredWithin('gamma', 250)).toBe(false);
    // An answer nobody asked for: a plugin cannot prove itself alive with it.
    p.c.send({ type: 'response', correlationId: 'h-nothing', success: true, data: 1 });
    await sleep(50);
    expect(hub.answeredWithin('gamma', 250)).toBe(false);
    p.c.serve((m) => m.data);
    expect(await hub.call('gamma', 'echo', 7, 2_000)).toBe(7);
    expect(hub.answeredWithin('gamma', 250)).toBe(true);
    await sleep(120);
    // Only as recent as asked: older than `ms`, it proves nothing more.
    expect(hub.answeredWithin('gamma', 100)).toBe(false);
    expect(hub.answeredWithin('nobody', 250)).toBe(false);
  });
});
