// What the SDK's test files share: a plugin connected to a fresh fake hub, and plugins run
// as child processes, all torn down after each test.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Plugin } from 'logomesh';
import { FakeHub } from './fake-hub.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const cleanups = [];

/** Call once per test file: tears down what its tests started. */
export function cleanUpAfterEach() {
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
}

export async function connected(setup = () => {}, hubOptions = {}, pluginOptions = {}) {
  const hub = await FakeHub.start(hubOptions);
  const logs = [];
  const plugin = new Plugin({
    socketPath: hub.socketPath,
    pluginId: 'fake',
    exit: false,
    handleSignals: false,
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...pluginOptions,
  });
  setup(plugin);
  const running = plugin.run();
  running.catch(() => {});
  cleanups.push(async () => {
    await plugin.shutdown(0).catch(() => {});
    await running.catch(() => {});
    await hub.close();
  });
  const hello = await hub.next('hello');
  await plugin.ready();
  return { hub, plugin, running, hello, logs };
}

export function child(script, hub, extraEnv = {}) {
  const proc = spawn(process.execPath, [path.join(HERE, 'plugins', script)], {
    env: { ...process.env, LOGOMESH_HUB_SOCKET: hub.socketPath, LOGOMESH_PLUGIN_ID: 'fake', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, out })));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  return { proc, exited, output: () => out };
}
