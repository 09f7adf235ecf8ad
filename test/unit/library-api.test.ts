import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as a program that embeds LogoMesh sees it: built (`npm run build`), then
 * imported by its name from a project of its own (node_modules/logomesh is this
 * repository), with the types its `exports` name checked by tsc. The controller's engine
 * is a socket that answers pings only: plugins are loaded, not started.
 */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-library-')));
const app = path.join(dir, 'app');
let engine: Server;

const PROGRAM = `
import { Controller, ControlClient, createLogger, isLogoMeshError, loadManifest, LogoMeshError, resolveHome, runPlugin } from 'logomesh';
import Docker from 'dockerode';

const [plugins, engineSock, homeDir] = process.argv.slice(2);
const out = {};
const loaded = loadManifest(plugins + '/echo');
out.manifest = { id: loaded.manifest.id, runtime: loaded.manifest.runtime, exposes: loaded.manifest.coordination.exposesMethods };
try {
  loadManifest(plugins + '/broken');
} catch (err) {
  out.rejected = { code: err.code, isLogoMeshError: isLogoMeshError(err) && err instanceof LogoMeshError };
}
const controller = await Controller.create({
  log: createLogger('embedder', 'silent'),
  home: resolveHome({ LOGOMESH_HOME: homeDir, LOGOMESH_INSTANCE: 'library-test' }),
  docker: new Docker({ socketPath: engineSock }),
  kernelLog: false,
});
out.loaded = controller.loadDirectory(plugins + '/echo');
controller.registerMethod('get_time', () => ({ now: 1 }));
const heard = [];
const off = controller.on('echo.*', (data, meta) => heard.push({ data, from: meta.from }));
controller.emit('echo.said', { text: 'hi' });
off();
try {
  await controller.call('echo', 'echo', { text: 'hi' }, 1000);
} catch (err) {
  out.call = { code: err.code, isLogoMeshError: err instanceof LogoMeshError };
}
out.status = controller.list().map((p) => ({ id: p.id, state: p.state }));
out.engine = controller.engineStatus().up;
await controller.close();
out.heard = heard;
out.functions = [typeof runPlugin, typeof ControlClient];
console.log(JSON.stringify(out));
`;

/** What a TypeScript embedder writes: it must type-check against the package's declarations alone. */
const TYPED = `
import { Controller, resolveHome, createLogger, runPlugin, type PluginStatus, type RunResult, type HostMethod, type LoadedManifest } from 'logomesh';

export async function embed(loaded: LoadedManifest): Promise<[PluginStatus[], RunResult]> {
  const controller = await Controller.create({ log: createLogger(), home: resolveHome() });
  const hello: HostMethod = async (data) => ({ echoed: data });
  controller.registerMethod('hello', hello);
  controller.load([loaded]);
  await controller.startAll();
  const unsubscribe: () => void = controller.on('news.*', (data: unknown, meta: { from: string; topic: string }) => void [data, meta]);
  unsubscribe();
  const answer: unknown = await controller.call('echo', 'echo', { a: 1 });
  void answer;
  await controller.close();
  const run = await runPlugin({ loaded, stdout: process.stdout, stderr: process.stderr });
  return [controller.list(), run];
}
`;

beforeAll(async () => {
  execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'ignore', timeout: 120_000 });
  engine = createServer((req, res) => (req.url?.endsWith('/_ping') ? res.writeHead(200).end('OK') : res.writeHead(404).end()));
  await new Promise<void>((r) => engine.listen(path.join(dir, 'docker.sock'), () => r()));
  mkdirSync(path.join(app, 'node_modules'), { recursive: true });
  symlinkSync(REPO, path.join(app, 'node_modules', 'logomesh'));
  // The embedder's own dependencies, as its package.json would have them.
  for (const dep of ['dockerode', '@types']) symlinkSync(path.join(REPO, 'node_modules', dep), path.join(app, 'node_modules', dep));
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'embedder', type: 'module', private: true }));
  writeFileSync(path.join(app, 'program.mjs'), PROGRAM);
  writeFileSync(path.join(app, 'typed.ts'), TYPED);
  writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], lib: ['ES2023', 'ESNext.Disposable'] }, files: ['typed.ts'] }),
  );
  for (const id of ['echo', 'broken']) mkdirSync(path.join(dir, 'plugins', id), { recursive: true });
  writeFileSync(path.join(dir, 'plugins', 'echo', 'main.py'), '\n');
  writeFileSync(path.join(dir, 'plugins', 'echo', 'plugin.yaml'), 'id: echo\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\ncoordination:\n  exposesMethods: [echo]\n  consumesMethods: [get_time]\n');
  writeFileSync(path.join(dir, 'plugins', 'broken', 'plugin.yaml'), 'id: Broken!\nversion: one\n');
}, 180_000);
afterAll(async () => {
  await new Promise<void>((r) => engine.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe("the package's library API, imported by name", () => {
  it('embeds the controller, loads manifests, and answers with coded errors', async () => {
    // Not execFileSync: the engine answering its pings runs in this process.
    const { stdout: text } = await promisify(execFile)(process.execPath, ['program.mjs', path.join(dir, 'plugins'), path.join(dir, 'docker.sock'), path.join(dir, 'home')], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(text)).toEqual({
      manifest: { id: 'echo', runtime: 'python', exposes: ['echo'] },
      rejected: { code: 'LM_MANIFEST_INVALID', isLogoMeshError: true },
      loaded: ['echo'],
      call: { code: 'LM_PLUGIN_UNAVAILABLE', isLogoMeshError: true },
      status: [{ id: 'echo', state: 'loaded' }],
      engine: true,
      heard: [],
      functions: ['function', 'function'],
    });
    // Child processes of Node.js and tsc: seconds on a loaded 2-core machine, not milliseconds.
  }, 60_000);

  it("type-checks an embedder's program against the declarations its exports name", () => {
    execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    // The bound is the compiler's own: on a busy 2-core machine it takes more than vitest's 5 s.
  }, 130_000);

  it('exposes nothing but its entry point', () => {
    const deep = () => execFileSync(process.execPath, ['--input-type=module', '-e', "await import('logomesh/dist/controller/controller.js')"], { cwd: app, stdio: 'pipe', timeout: 30_000 });
    expect(deep).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  }, 30_000);
});
