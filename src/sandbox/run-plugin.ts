import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { connectEngine, type Docker } from '../engine/docker.js';
import { instanceId } from '../labels.js';
import { silentLogger, type Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import { NO_POLICY, type Policy } from '../policy/policy.js';
import type { SignedContent } from '../signing/signature.js';
import { Egress } from './egress.js';
import { PluginContainer } from './plugin-container.js';
import { prepareSandbox, type SandboxHooks } from './prepare.js';

export interface RunOptions {
  readonly loaded: LoadedManifest;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** The engine (default: connectEngine(), DOCKER_HOST or the local socket). */
  readonly docker?: Docker;
  /** Instance label of what the run creates (default: instanceId(), this process's run). */
  readonly instance?: string;
  /** Default: silent. */
  readonly log?: Logger;
  /** Aborting stops the plugin and removes its container. */
  readonly signal?: AbortSignal;
  /** Where image build progress goes (shown only on a TTY). */
  readonly progress?: NodeJS.WriteStream;
  /** Called once the container exists, before it starts (tests use it to watch usage). */
  readonly onCreated?: (container: PluginContainer) => void | Promise<void>;
  /**
   * The egress proxy a plugin with network capabilities goes through. Default: one started
   * for this run and removed after it.
   */
  readonly egress?: Egress;
  /**
   * The operator policy: checked again here (LM_POLICY_DENIED), and it decides the system
   * calls allowed beyond the profile and the OCI runtime. Default: NO_POLICY.
   */
  readonly policy?: Policy;
  /** What the plugin's verified signature lists (absent: unsigned): a compiled plugin is built only from exactly these files. */
  readonly signed?: SignedContent;
  /**
   * Test hooks around the check of the plugin's host paths: `beforeMounts` right before they
   * are resolved, `afterMounts` once they are held and staged, right before the container is
   * created. A test swaps a folder for a symlink there.
   */
  readonly hooks?: SandboxHooks;
}

export interface RunResult {
  readonly exitCode: number;
  /** The kernel's OOM killer ended the plugin (State.OOMKilled). */
  readonly oomKilled: boolean;
  /** The run was aborted through `signal`. */
  readonly interrupted: boolean;
  readonly containerId: string;
  /** From container start to exit, as the engine recorded it. */
  readonly runMs: number;
}

/**
 * Run a plugin's entrypoint to completion in its sandbox, streaming its output. The
 * container is removed on every path out: exit, error or abort.
 */
export async function runPlugin(opts: RunOptions): Promise<RunResult> {
  const { loaded } = opts;
  const docker = opts.docker ?? (await connectEngine());
  const log = opts.log ?? silentLogger;
  const instance = opts.instance ?? instanceId();
  // A plugin with network capabilities: its own network to the egress proxy, removed after the run.
  let egress = opts.egress;
  let configDir: string | undefined;
  const key = `run-${randomBytes(4).toString('hex')}`;
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- held for its disposal only
  await using _cleanup = {
    async [Symbol.asyncDispose]() {
      await egress?.detach(key);
      if (egress && egress !== opts.egress) await egress.close();
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    },
  };
  await using sandbox = await prepareSandbox({
    docker,
    loaded,
    instance,
    log,
    policy: opts.policy ?? NO_POLICY,
    ...(opts.progress ? { progress: opts.progress } : {}),
    ...(opts.signed ? { signed: opts.signed } : {}),
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    network: async () => {
      if (!egress) {
        configDir = mkdtempSync(path.join(os.tmpdir(), 'lm-egress-'));
        egress = await Egress.start({ docker, instance, log, configDir });
      }
      return egress.attach(key, loaded.manifest);
    },
  });
  if (!sandbox) return { exitCode: 130, oomKilled: false, interrupted: true, containerId: '', runMs: 0 };
  // Declared after the cleanup, so it is disposed first: the network is removed once the container is gone.
  await using container = await PluginContainer.create(docker, sandbox.spec, log);
  if (opts.signal?.aborted) return { exitCode: 130, oomKilled: false, interrupted: true, containerId: container.id, runMs: 0 };
  await opts.onCreated?.(container);
  const completion = await container.runToCompletion(opts.stdout, opts.stderr, opts.signal, {
    beforeStart: () => sandbox.verify(), // throws LM_PATH_CHANGED
    afterStart: () => sandbox.release(), // the container holds its own mounts now
  });
  return { ...completion, containerId: container.id };
}
