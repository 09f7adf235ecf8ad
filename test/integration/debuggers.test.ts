import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { CdpClient, DapClient } from './debug-clients.js';
import { docker, instance, runCli, tempDir } from './support.js';

const NODE_MAIN = `import { Plugin } from 'logomesh';
const plugin = new Plugin();
plugin.method('sum', ({ a, b }) => {
  const total = a + b;
  return { total };
});
await plugin.run();
`;

const PYTHON_MAIN = `from logomesh import Plugin

plugin = Plugin()


@plugin.method
async def sum(a, b):
    total = a + b
    return {"total": total}


if __name__ == "__main__":
    plugin.run()
`;

function write(root: string, id: string, runtime: 'node' | 'python', main: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  const entry = runtime === 'node' ? 'main.mjs' : 'main.py';
  writeFileSync(path.join(dir, entry), main);
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: ${runtime}\nentrypoint: ${entry}\ncoordination:\n  exposesMethods: [sum]\n`);
}

/**
 * `logomesh dev --debug` (docs/debugging.md): each runtime's debugger, reached from the host
 * through the port the controller forwards into the plugin's container (which keeps network
 * mode none), driven by this test through the debugger's own protocol: a breakpoint is hit
 * and a variable read.
 */
describe('debuggers, in development only', () => {
  let host: Controller;
  beforeAll(async () => {
    const root = tempDir('lm-debug-');
    write(root, 'dbg-node', 'node', NODE_MAIN);
    write(root, 'dbg-python', 'python', PYTHON_MAIN);
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-debug-home-'), LOGOMESH_INSTANCE: `${instance()}-debug` });
    host = await Controller.create({ log: silentLogger, home, stopGraceMs: 2_000, debug: true, startTimeoutMs: 120_000 });
    host.loadDirectory(root);
    await host.startAll();
  }, 300_000);
  afterAll(async () => {
    await host?.close();
  });

  it('the sandbox keeps no network: each plugin has network mode none, and its debugger is on the host only', async () => {
    for (const id of ['dbg-node', 'dbg-python']) {
      const s = host.status(id);
      expect(s.debug?.port).toBeGreaterThan(0);
      const info = await (await docker()).getContainer(s.containerId!).inspect();
      expect(info.HostConfig.NetworkMode).toBe('none');
      expect(info.HostConfig.PortBindings ?? {}).toEqual({});
      expect(info.HostConfig.ReadonlyRootfs).toBe(true);
      expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    }
  });

  it("Node.js: a breakpoint through the inspector's protocol (CDP) is hit and a variable read", async () => {
    const cdp = await CdpClient.connect(host.status('dbg-node').debug!.port);
    try {
      await cdp.send('Debugger.enable');
      await cdp.send('Debugger.setBreakpointByUrl', { lineNumber: 4, urlRegex: 'main\\.mjs$' }); // `return { total };`, 0-based
      const call = host.call('dbg-node', 'sum', { a: 2, b: 3 }, 60_000);
      const paused = await cdp.event('Debugger.paused');
      const frame = (paused.callFrames as { callFrameId: string }[])[0]!;
      const total = (await cdp.send('Debugger.evaluateOnCallFrame', { callFrameId: frame.callFrameId, expression: 'total' })).result as { value: number };
      expect(total.value).toBe(5);
      await cdp.send('Debugger.resume');
      expect(await call).toEqual({ total: 5 });
    } finally {
      cdp.close();
    }
  }, 120_000);

  it('Python: a breakpoint through debugpy (DAP) is hit and a variable read', async () => {
    const dap = await DapClient.connect(host.status('dbg-python').debug!.port);
    try {
      await dap.request('initialize', { adapterID: 'debugpy', clientID: 'logomesh-test', linesStartAt1: true, columnsStartAt1: true, pathFormat: 'path' });
      dap.send('attach', { justMyCode: false });
      await dap.event('initialized');
      const bp = await dap.request('setBreakpoints', { source: { path: '/plugin/main.py' }, breakpoints: [{ line: 9 }] }); // `return {"total": total}`
      expect((bp.breakpoints as { verified: boolean }[])[0]?.verified).toBe(true);
      await dap.request('configurationDone');
      const call = host.call('dbg-python', 'sum', { a: 2, b: 3 }, 60_000);
      const stopped = await dap.event('stopped');
      const { stackFrames } = (await dap.request('stackTrace', { threadId: stopped.threadId })) as { stackFrames: { id: number; line: number }[] };
      expect(stackFrames[0]?.line).toBe(9);
      const { scopes } = (await dap.request('scopes', { frameId: stackFrames[0]!.id })) as { scopes: { variablesReference: number }[] };
      const { variables } = (await dap.request('variables', { variablesReference: scopes[0]!.variablesReference })) as { variables: { name: string; value: string }[] };
      expect(variables.find((v) => v.name === 'total')?.value).toBe('5');
      await dap.request('continue', { threadId: stopped.threadId });
      expect(await call).toEqual({ total: 5 });
    } finally {
      dap.close();
    }
  }, 120_000);

  it('logomesh up refuses debug mode', async () => {
    const r = await runCli(['up', tempDir('lm-debug-up-'), '--debug'], { env: { LOGOMESH_HOME: tempDir('lm-debug-up-home-') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^LM_USAGE: logomesh up does not run plugins under a debugger/m);
  });
});
