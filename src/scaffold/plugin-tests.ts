import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { ContainerCreateOptions } from 'dockerode';
import type { Docker } from '../engine/docker.js';
import { ensureRuntimeImage } from '../images/build.js';
import { LABEL, ownerLabels } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest, Runtime } from '../manifest/types.js';
import { runtimeImage } from '../runtimes/index.js';
import { PLUGIN_MOUNT, PLUGIN_USER, type RuntimeImage } from '../runtimes/runtime.js';
import { holdRealPath } from '../sandbox/host-paths.js';
import { MountStaging } from '../sandbox/mount-staging.js';
import { pathChanged, verifyPluginMounts } from '../sandbox/plugin-mounts.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import { seccompProfile, seccompSecurityOpt, seccompVariant } from '../seccomp/profiles.js';

/** How one runtime runs a plugin's own tests. */
export interface TestRecipe {
  /** The image the tests run in: the runtime image, or for compiled runtimes the builder. */
  readonly image: string;
  readonly command: readonly string[];
  /**
   * A read-only root with a size-limited tmpfs on /tmp, as a plugin gets. The builder
   * images write their compile caches (GOCACHE, cargo's target folder) into the image's
   * own folders, so they get a writable container layer instead, thrown away with the
   * container; the plugin folder is read-only either way.
   */
  readonly readOnlyRoot: boolean;
  /** Memory limit: compiling tests needs more than the plugin itself. */
  readonly memoryMB: number;
}

/**
 * What `logomesh test` runs for a plugin: the language's own test command, in the image
 * the plugin runs or is built in. `args` are appended (a test filter, more verbosity).
 */
function testRecipe(loaded: LoadedManifest, args: readonly string[] = []): TestRecipe {
  const runtime = runtimeImage(loaded.manifest.runtime);
  const builder = runtime.images[0]?.tag ?? runtime.tag;
  const recipes: Record<Runtime, TestRecipe> = {
    // Every test*.py of the folder, imported with the folder as the top level (so `import main` works).
    python: {
      image: runtime.tag,
      command: ['python3', '-B', '-m', 'unittest', 'discover', '-v', '-s', PLUGIN_MOUNT, '-t', PLUGIN_MOUNT, ...args],
      readOnlyRoot: true,
      memoryMB: 1024,
    },
    // node --test finds *.test.mjs (and its other patterns) under the working folder, /plugin.
    node: { image: runtime.tag, command: ['node', '--test', '--test-reporter=spec', ...args], readOnlyRoot: true, memoryMB: 1024 },
    // go test ./... with the folder placed at its import path, offline, in GOPATH mode.
    go: { image: builder, command: ['logomesh-go-build', '--test', PLUGIN_MOUNT, '-count=1', '-v', ...args], readOnlyRoot: false, memoryMB: 2048 },
    // cargo test of the folder compiled as a plugin build does, with the precompiled crates.
    rust: { image: builder, command: ['logomesh-test-plugin', loaded.manifest.entrypoint, ...args], readOnlyRoot: false, memoryMB: 2048 },
  };
  return recipes[loaded.manifest.runtime];
}

export interface PluginTestOptions {
  readonly docker: Docker;
  readonly loaded: LoadedManifest;
  readonly instance: string;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly log: Logger;
  /** Extra arguments for the test command. */
  readonly args?: readonly string[];
  /** Aborting stops the tests and removes their container. */
  readonly signal?: AbortSignal;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
}

export interface PluginTestResult {
  readonly exitCode: number;
  readonly oomKilled: boolean;
  readonly interrupted: boolean;
  readonly recipe: TestRecipe;
  /** From container start to exit. */
  readonly ms: number;
}

/** The container the tests run in: isolated like a plugin (no network, non-root, no capabilities, its seccomp profile). */
function testContainerSpec(loaded: LoadedManifest, runtime: RuntimeImage, recipe: TestRecipe, instance: string, folderSource: string = loaded.pluginDir): ContainerCreateOptions {
  const { manifest } = loaded;
  const env: Record<string, string> = {
    ...runtime.env,
    HOME: '/tmp',
    LOGOMESH_PLUGIN_ID: manifest.id,
    LOGOMESH_PLUGIN_VERSION: manifest.version,
    LOGOMESH_PLUGIN_DIR: PLUGIN_MOUNT,
  };
  return {
    name: `lm-test-${manifest.id}-${randomBytes(3).toString('hex')}`,
    Image: recipe.image,
    Cmd: [...recipe.command],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    User: PLUGIN_USER,
    WorkingDir: PLUGIN_MOUNT,
    Hostname: manifest.id,
    // Role plugin: a test container left by a killed `logomesh test` is an orphan the next run removes.
    Labels: { ...ownerLabels('plugin', instance), [LABEL.plugin]: manifest.id, [LABEL.manifestHash]: loaded.hash },
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      Memory: recipe.memoryMB * 1024 * 1024,
      MemorySwap: recipe.memoryMB * 1024 * 1024,
      PidsLimit: 1024,
      Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 1024 }],
      ReadonlyRootfs: recipe.readOnlyRoot,
      ...(recipe.readOnlyRoot ? { Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=256m,mode=1777' } } : {}),
      CapDrop: ['ALL'],
      CapAdd: [],
      // The plugins' own seccomp profile: the tests run the plugin's code.
      SecurityOpt: ['no-new-privileges:true', seccompSecurityOpt(seccompProfile(seccompVariant('none')))],
      Privileged: false,
      NetworkMode: 'none',
      IpcMode: 'private',
      // The plugin folder only, read-only: tests read the code and data, and write nothing back.
      // Its source is the controller's staging mount of the folder it checked (mount-staging.ts).
      Mounts: [{ Type: 'bind', Source: folderSource, Target: PLUGIN_MOUNT, ReadOnly: true }],
      Init: true,
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  };
}

/**
 * Run a plugin's own tests in a container of its runtime's image (or builder), streaming
 * their output. The container is removed on every path out.
 */
export async function runPluginTests(opts: PluginTestOptions): Promise<PluginTestResult> {
  const { docker, loaded, log } = opts;
  const runtime = runtimeImage(loaded.manifest.runtime);
  const recipe = testRecipe(loaded, opts.args);
  await ensureRuntimeImage(docker, runtime, { log, ...(opts.progress ? { progress: opts.progress } : {}) });
  const interruptedResult = { exitCode: 130, oomKilled: false, interrupted: true, recipe, ms: 0 };
  if (opts.signal?.aborted) return interruptedResult;

  // The folder is opened now without following a symlink, and mounted from that descriptor.
  await using staging = new MountStaging(log);
  let folder: string;
  try {
    folder = await staging.stage(holdRealPath(loaded.pluginDir, 'directory'), { writable: false });
  } catch (err) {
    throw pathChanged(loaded, { relative: '.', hostPath: loaded.pluginDir, target: PLUGIN_MOUNT }, err);
  }
  await using container = await PluginContainer.create(docker, testContainerSpec(loaded, runtime, recipe, opts.instance, folder), log);
  const done = await container.runToCompletion(opts.stdout, opts.stderr, opts.signal, {
    beforeStart: () => verifyPluginMounts(staging, loaded),
    afterStart: () => staging.release(),
  });
  return done.interrupted ? interruptedResult : { exitCode: done.exitCode, oomKilled: done.oomKilled, interrupted: false, recipe, ms: done.runMs };
}
