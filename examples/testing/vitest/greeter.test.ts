// The greeter plugin tested in its real sandbox under a real LogoMesh controller, with
// vitest. Copy this next to your plugin, point PLUGINS at its folder (or at a folder of
// plugin folders), and run `npx vitest run`. See docs/testing-plugins.md.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogoMeshEnvironment, type StartedLogoMeshEnvironment } from 'logomesh/testing';

const PLUGINS = fileURLToPath(new URL('../plugins', import.meta.url));

describe('greeter in its sandbox', () => {
  let mesh: StartedLogoMeshEnvironment;

  beforeAll(async () => {
    mesh = await new LogoMeshEnvironment(PLUGINS)
      // The host application's method, as a stub: the plugin's calls to it are recorded.
      .withHostMethod('get_user', (data) => {
        const { id } = data as { id: number };
        if (id === 1) return { name: 'Ada' };
        throw new Error(`no user ${id}`);
      })
      .start();
  }, 300_000);

  afterAll(() => mesh?.stop(), 120_000);

  it('greets the user the host knows, and publishes greeting.sent', async () => {
    expect(await mesh.call('greeter', 'greet', { id: 1 })).toEqual({ greeting: 'Hello, Ada!' });
    expect(mesh.hostCalls('get_user')).toEqual([{ from: 'greeter', data: { id: 1 } }]);
    const event = await mesh.waitForEvent('greeting.sent');
    expect(event).toMatchObject({ from: 'greeter', data: { id: 1, greeting: 'Hello, Ada!' } });
  });

  it("passes the host's failure on as a coded error", async () => {
    await expect(mesh.call('greeter', 'greet', { id: 2 })).rejects.toMatchObject({ code: 'LM_PLUGIN_ERROR', message: expect.stringContaining('no user 2') });
  });

  it('runs within its memory limit, and its calls are in the audit trail', async () => {
    const usage = await mesh.usage('greeter');
    expect(usage.memory.limit).toBe(64 * 1024 * 1024);
    expect(usage.memory.used).toBeGreaterThan(0);
    expect(usage.memory.used).toBeLessThan(usage.memory.limit);
    const trail = await mesh.audit({ plugin: 'greeter' });
    expect(trail.map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`)).toContain('greeter call get_user allowed');
  });
});
