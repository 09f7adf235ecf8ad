import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';

const policy = (id: string, exposes: string[], consumes: string[] = []): PluginPolicy => ({ id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: ['*'], subscribes: ['*'] });

describe('a warm standby on the hub', () => {
  let dir: string;
  let hub: Hub;
  const clients: Client[] = [];
  const open = async (file: string) => {
    const c = await Client.open(`ws+unix://${path.join(dir, file)}:/v1`);
    clients.push(c);
    return c;
  };
  const events: string[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-standby-'));
    hub = new Hub({ log: silentLogger, token: 't' });
    for (const e of ['ready', 'disconnected', 'standby-ready', 'standby-lost']) hub.on(e, (id: string) => events.push(`${e}:${id}`));
    await hub.attachPlugin(policy('caller', [], ['echo.echo']), path.join(dir, 'caller', 'hub.sock'));
    await hub.attachPlugin(policy('echo', ['echo']), path.join(dir, 'echo', 'hub.sock'));
    await hub.attachStandby('echo', path.join(dir, 'echo.sb1', 'hub.sock'));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    events.length = 0;
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds the standby hello unanswered and routes nothing to it; switched in, it serves in the same turn', async () => {
    const caller = await open('caller/hub.sock');
    await caller.hello([]);
    const active = await open('echo/hub.sock');
    await active.hello(['echo']);
    active.serve(() => 'active');
    const standby = await open('echo.sb1/hub.sock');
    standby.serve(() => 'standby');
    expect(hub.standbyWaiting('echo')).toBe(false);
    const helloId = standby.send({ type: 'hello', protocol: 1, methods: ['echo'] });
    await new Promise((r) => setTimeout(r, 100));
    // Held: no answer, and the plugin stays on its active connection.
    expect(standby.inbox.find((m) => m.correlationId === helloId)).toBeUndefined();
    expect(hub.standbyWaiting('echo')).toBe(true);
    expect(events).toContain('standby-ready:echo');
    expect((await caller.reply(caller.send({ type: 'request', to: ['echo'], method: 'echo', data: 1 }))).data).toBe('active');
    // It may send nothing before it is switched in.
    const early = await standby.reply(standby.send({ type: 'request', to: ['caller'], method: 'x', data: 1 }));
    expect(early).toMatchObject({ success: false, error: { code: 'LM_PROTOCOL' } });
    // A call waiting on the active connection when the switch comes fails with LM_PLUGIN_EXITED.
    const slowId = caller.send({ type: 'request', to: ['echo'], method: 'echo', data: 'slow' });
    await active.next((m) => m.type === 'request' && m.data === 'slow');
    events.length = 0;
    expect(hub.switchToStandby('echo')).toBe(true);
    expect(hub.isReady('echo')).toBe(true);
    expect(events).toEqual(['ready:echo']);
    expect(await standby.reply(helloId)).toMatchObject({ success: true, data: { plugin: 'echo' } });
    expect(await caller.reply(slowId)).toMatchObject({ success: false, error: { code: 'LM_PLUGIN_EXITED' } });
    expect((await caller.reply(caller.send({ type: 'request', to: ['echo'], method: 'echo', data: 2 }))).data).toBe('standby');
    await new Promise((r) => active.ws.readyState === active.ws.CLOSED ? r(null) : active.ws.once('close', r));
    // The old connection point is gone; the standby's is the plugin's now.
    expect(existsSync(path.join(dir, 'echo', 'hub.sock'))).toBe(false);
    expect(existsSync(path.join(dir, 'echo.sb1', 'hub.sock'))).toBe(true);
    expect(hub.standbyWaiting('echo')).toBe(false);
    expect(hub.switchToStandby('echo')).toBe(false);
  });

  it('does not switch to a standby that has not said hello, or whose hello was refused', async () => {
    const standby = await open('echo.sb1/hub.sock');
    expect(hub.switchToStandby('echo')).toBe(false);
    const r = await standby.reply(standby.send({ type: 'hello', protocol: 1, methods: ['echo', 'undeclared'] }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    expect(hub.standbyWaiting('echo')).toBe(false);
    expect(hub.switchToStandby('echo')).toBe(false);
  });

  it('a standby that goes away before its turn is reported and cannot be switched in', async () => {
    const standby = await open('echo.sb1/hub.sock');
    standby.send({ type: 'hello', protocol: 1, methods: ['echo'] });
    await new Promise((r) => setTimeout(r, 50));
    expect(hub.standbyWaiting('echo')).toBe(true);
    standby.ws.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toContain('standby-lost:echo');
    expect(events).not.toContain('disconnected:echo');
    expect(hub.switchToStandby('echo')).toBe(false);
  });

  it('detaching the plugin closes its standby connection point too; a new standby replaces the old', async () => {
    await hub.attachStandby('echo', path.join(dir, 'echo.sb2', 'hub.sock'));
    expect(existsSync(path.join(dir, 'echo.sb1', 'hub.sock'))).toBe(false);
    expect(existsSync(path.join(dir, 'echo.sb2', 'hub.sock'))).toBe(true);
    await hub.detachPlugin('echo');
    expect(existsSync(path.join(dir, 'echo.sb2', 'hub.sock'))).toBe(false);
    await expect(hub.attachStandby('echo', path.join(dir, 'echo.sb3', 'hub.sock'))).rejects.toMatchObject({ code: 'LM_PLUGIN_UNAVAILABLE' });
  });
});
