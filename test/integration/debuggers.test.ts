import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { CdpClient, DapClient, DelveClient } from './debug-clients.js';
import { scaffoldPlugin } from '../../src/scaffold/create.js';
import { docker, instance, runCli, sleep, tempDir } from './support.js';

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
  let root: string;
  beforeAll(async () => {
    root = tempDir('lm-debug-');
    write(root, 'dbg-node', 'node', NODE_MAIN);
    write(root, 'dbg-python', 'python', PYTHON_MAIN);
    scaffoldPlugin({ runtime: 'go', name: 'dbg-go', dir: path.join(root, 'dbg-go') });
    scaffoldPlugin({ runtime: 'rust', name: 'dbg-rust', dir: path.join(root, 'dbg-rust') });
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-debug-home-'), LOGOMESH_INSTANCE: `${instance()}-debug` });
    host = await Controller.create({ log: silentLogger, home, stopGraceMs: 2_000, debug: true, startTimeoutMs: 120_000 });
    host.loadDirectory(root);
    await host.startAll();
  }, 300_000);
  afterAll(async () => {
    await host?.close();
  });

  it('the sandbox keeps no network: each plugin has network mode none, and its debugger is on the host only', async () => {
    for (const id of ['dbg-node', 'dbg-python', 'dbg-go', 'dbg-rust']) {
      const s = host.status(id);
      expect(s.debug?.port).toBeGreaterThan(0);
      const info = await (await docker()).getContainer(s.containerId!).inspect();
      expect(info.HostConfig.NetworkMode).toBe('none');
      // Room for the debugger, charged to the plugin's cgroup: the manifest's limit plus 256 MiB.
      expect(info.HostConfig.Memory).toBe((host.manifests().find((l) => l.manifest.id === id)!.manifest.resources.maxMemoryMB + 256) * 1024 * 1024);
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

  it('Go: a breakpoint through delve (its JSON-RPC API) is hit and a variable read', async () => {
    const dlv = await DelveClient.connect(host.status('dbg-go').debug!.port);
    try {
      const line = readFileSync(path.join(root, 'dbg-go', 'main.go'), 'utf8').split('\n').findIndex((l) => l.includes('"Hello, "')) + 1;
      await dlv.call('Command', { name: 'halt' });
      const { Locations } = (await dlv.call('FindLocation', { Scope: { GoroutineID: -1 }, Loc: `main.go:${line}` })) as { Locations: { pc: number; file: string; line: number }[] };
      await dlv.call('CreateBreakpoint', { Breakpoint: { file: Locations[0]!.file, line: Locations[0]!.line } });
      const hit = dlv.call('Command', { name: 'continue' });
      const call = host.call('dbg-go', 'hello', { name: 'Ada' }, 60_000);
      const state = (await hit).State as { currentThread?: { goroutineID: number; line: number } };
      expect(state.currentThread?.line).toBe(line);
      const { Variables } = (await dlv.call('ListLocalVars', { Scope: { GoroutineID: state.currentThread!.goroutineID, Frame: 0 }, Cfg: { FollowPointers: true, MaxVariableRecurse: 1, MaxStringLen: 64, MaxArrayValues: 64, MaxStructFields: -1 } })) as { Variables: { name: string; value: string }[] };
      expect(Variables.find((v) => v.name === 'name')?.value).toBe('Ada');
      // The plugin runs on: the call is answered. Should delve stop it again instead, its
      // answer says where (rather than a silent timeout of the call).
      const resumed = dlv.call('Command', { name: 'continue' }, 120_000).then((r) => {
        throw new Error(`the plugin stopped again after the breakpoint: ${JSON.stringify(r.State).slice(0, 2_000)}`);
      });
      resumed.catch(() => undefined);
      expect(await Promise.race([call, resumed])).toEqual({ greeting: 'Hello, Ada!' });
    } finally {
      dlv.close();
    }
  }, 180_000);

  it("Rust: a breakpoint through gdb's remote protocol (the host's gdb, gdbserver attached in the container) is hit and a variable read", async () => {
    const line = readFileSync(path.join(root, 'dbg-rust', 'main.rs'), 'utf8').split('\n').findIndex((l) => l.includes('format!("Hello, {}!", name)')) + 1;
    const args = ['-nx', '-batch', '-ex', 'set pagination off', '-ex', 'set confirm off', '-ex', 'set sysroot target:', '-ex', `target remote 127.0.0.1:${host.status('dbg-rust').debug!.port}`, '-ex', `break main.rs:${line}`, '-ex', 'shell echo LOGOMESH-ARMED >&2', '-ex', 'continue', '-ex', 'print name', '-ex', 'detach'];
    const gdb = spawn('gdb', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    gdb.stdout.on('data', (c: Buffer) => (out += c.toString()));
    gdb.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const ended = new Promise<number | null>((r) => gdb.once('exit', r));
    try {
      // gdb's own output is buffered in a pipe; the shell's line is not. The plugin stays
      // stopped (attached) until the continue after it, so a call sent now waits for it.
      for (let i = 0; i < 2400 && !/^LOGOMESH-ARMED$/m.test(out); i++) {
        if (gdb.exitCode !== null) throw new Error(`gdb ended before the breakpoint:\n${out}`);
        await sleep(50);
      }
      const call = host.call('dbg-rust', 'hello', { name: 'Ada' }, 60_000);
      expect(await ended, out).toBe(0);
      expect(out).toMatch(new RegExp(`Breakpoint 1, .*main\\.rs:${line}`, 's'));
      expect(out).toMatch(/^\$1 = "Ada"$/m);
      expect(await call).toEqual({ greeting: 'Hello, Ada!' });
    } finally {
      gdb.kill('SIGKILL');
    }
  }, 180_000);

  it("a compiled plugin's debug build and its own image are both kept (neither removes the other as an older build)", async () => {
    const engine = await docker();
    for (const id of ['dbg-go', 'dbg-rust']) {
      const images = await engine.listImages({ filters: JSON.stringify({ label: [`${LABEL.role}=plugin-image`, `${LABEL.plugin}=${id}`] }) });
      const repositories = images.flatMap((i) => i.RepoTags ?? []).map((t) => t.split(':')[0]);
      expect(repositories).toEqual(expect.arrayContaining([`logomesh/plugin-${id}`, `logomesh/plugin-${id}-debug`]));
      expect((await engine.getContainer(host.status(id).containerId!).inspect()).Config.Image).toMatch(new RegExp(`^logomesh/plugin-${id}-debug:`));
    }
  });

  it('logomesh up refuses debug mode', async () => {
    const r = await runCli(['up', tempDir('lm-debug-up-'), '--debug'], { env: { LOGOMESH_HOME: tempDir('lm-debug-up-home-') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^LM_USAGE: logomesh up does not run plugins under a debugger/m);
  });
});
