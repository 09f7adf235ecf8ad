import type { ContainerCreateOptions, ContainerInspectInfo } from 'dockerode';
import type { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import { ignoreGone } from '../engine/cleanup.js';
import { engineError, engineStatus, type Docker } from '../engine/docker.js';

/** How long an exit by SIGKILL waits for the engine's State.OOMKilled to catch up with the kernel (oomKilled). */
const OOM_FLAG_PATIENCE_MS = 2_000;

/** How a container run to completion ended. */
export interface Completion {
  readonly exitCode: number;
  /** The kernel's OOM killer ended it (State.OOMKilled). */
  readonly oomKilled: boolean;
  /** Aborted: the container was removed before it finished. */
  readonly interrupted: boolean;
  /** From start to exit, as the engine recorded it. */
  readonly runMs: number;
}

/** Steps around the engine's start, where it mounts the container's host paths. */
export interface StartHooks {
  /** Right before the start: a throw keeps the container from starting (it is removed). */
  readonly beforeStart?: () => void | Promise<void>;
  /** Right after the start, once the mounts are made. */
  readonly afterStart?: () => void | Promise<void>;
}

/**
 * One plugin container on the engine, from creation to removal. `remove()` is idempotent
 * and `await using` removes the container however the scope is left.
 */
export class PluginContainer implements AsyncDisposable {
  private removal: Promise<void> | undefined;

  private constructor(
    private readonly docker: Docker,
    readonly id: string,
    private readonly log: Logger,
  ) {}

  static async create(docker: Docker, spec: ContainerCreateOptions, log: Logger): Promise<PluginContainer> {
    try {
      const c = await docker.createContainer(spec);
      log.debug({ container: c.id }, 'container created');
      return new PluginContainer(docker, c.id, log.child({ container: c.id.slice(0, 12) }));
    } catch (err) {
      throw engineError('create the plugin container', err, { image: spec.Image });
    }
  }

  /** Take over a container a previous controller created (found by its labels). */
  static adopt(docker: Docker, id: string, log: Logger): PluginContainer {
    return new PluginContainer(docker, id, log.child({ container: id.slice(0, 12) }));
  }

  private get container() {
    return this.docker.getContainer(this.id);
  }

  /**
   * Stream the container's stdout and stderr into the given writers. Attach before start
   * so no early output is lost. Resolves to a function that waits (bounded) for the
   * stream to drain after the container exits.
   */
  async attach(stdout: Writable, stderr: Writable, replay = true): Promise<(timeoutMs?: number) => Promise<void>> {
    const stream = await this.container.attach({ stream: true, stdout: true, stderr: true, logs: replay });
    this.docker.modem.demuxStream(stream, stdout, stderr);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    return async (timeoutMs = 2_000) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      (stream as unknown as { destroy?: () => void }).destroy?.();
    };
  }

  async start(): Promise<void> {
    try {
      await this.container.start();
    } catch (err) {
      throw engineError('start the plugin container', err, { container: this.id });
    }
    this.log.debug('container started');
  }

  /** Resolves with the exit code once the container stops. */
  async wait(): Promise<number> {
    const { StatusCode } = (await this.container.wait()) as { StatusCode: number };
    return StatusCode;
  }

  /** SIGTERM, then SIGKILL after `graceSeconds`. Already stopped (304) or gone (404) is fine. */
  async stop(graceSeconds: number): Promise<void> {
    try {
      await this.container.stop({ t: graceSeconds });
    } catch (err) {
      const status = engineStatus(err);
      if (status !== 304 && status !== 404) throw engineError('stop the plugin container', err, { container: this.id });
    }
  }

  /**
   * SIGKILL now, no grace, and wait (up to 10 s) for the engine to report the exit: every
   * process of the container is gone when this resolves. Already stopped or gone is fine.
   */
  async kill(): Promise<void> {
    try {
      await this.container.kill({ signal: 'SIGKILL' });
    } catch (err) {
      const status = engineStatus(err);
      if (status !== 304 && status !== 404 && status !== 409) throw engineError('kill the plugin container', err, { container: this.id });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.wait().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    this.log.debug('container killed');
  }

  /** Where the container is after the engine lost sight of it (Workload.probe): gone (404), running, or ended with its code. */
  async probe(): Promise<{ state: 'running' } | { state: 'exited'; exitCode: number } | { state: 'gone' }> {
    let state;
    try {
      state = (await this.inspect()).State;
    } catch (err) {
      if (engineStatus(err) === 404) return { state: 'gone' };
      throw err;
    }
    return state.Running ? { state: 'running' } : { state: 'exited', exitCode: state.ExitCode };
  }

  inspect(): Promise<ContainerInspectInfo> {
    return this.container.inspect();
  }

  /**
   * Attach, start and wait for the exit, streaming output; an abort kills and removes the
   * container at once. What `logomesh run` and `logomesh test` both do with a container.
   */
  async runToCompletion(stdout: Writable, stderr: Writable, signal?: AbortSignal, hooks: StartHooks = {}): Promise<Completion> {
    let interrupted = false;
    const onAbort = () => {
      interrupted = true;
      void this.remove();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // An abort that landed while the container was being created.
      if (signal?.aborted) return { exitCode: 130, oomKilled: false, interrupted: true, runMs: 0 };
      const drained = await this.attach(stdout, stderr);
      await hooks.beforeStart?.();
      await this.start();
      // Waited for from the start on, while afterStart (the staging mounts' release) runs.
      const exited = this.wait().catch(() => 137);
      await hooks.afterStart?.();
      const exitCode = await exited;
      await drained();
      if (interrupted) return { exitCode: 130, oomKilled: false, interrupted, runMs: 0 };
      const state = (await this.inspect()).State;
      // One look at the state says both; only an exit by SIGKILL the engine has not flagged yet is looked at again.
      const oomKilled = state.OOMKilled || (exitCode === 137 && (await this.oomKilled(exitCode)));
      return { exitCode, oomKilled, interrupted, runMs: Date.parse(state.FinishedAt) - Date.parse(state.StartedAt) };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Was an exit with `exitCode` the OOM killer's? The engine (20.10) can report the exit
   * before it has handled the kernel's OOM event, and State.OOMKilled then says false for a
   * moment: an exit by SIGKILL (137) is looked at again for up to OOM_FLAG_PATIENCE_MS,
   * unless `patient` is false (the caller has the kernel's own notification). Half a second
   * was too short once under a loaded CI host (`logomesh run` of a memory hog reported a bare
   * exit 137); the wait costs only an exit by SIGKILL that was not the OOM killer's.
   */
  async oomKilled(exitCode: number, patient = true): Promise<boolean> {
    const until = Date.now() + OOM_FLAG_PATIENCE_MS;
    for (;;) {
      const killed = (await this.inspect()).State.OOMKilled;
      if (killed || exitCode !== 137 || !patient || Date.now() >= until) return killed;
      await new Promise((r) => setTimeout(r, 120));
    }
  }

  /** Kill and remove, with anonymous volumes; safe to call any number of times. */
  remove(): Promise<void> {
    this.removal ??= ignoreGone(this.container.remove({ force: true, v: true })).then(() => this.log.debug('container removed'));
    return this.removal;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.remove();
  }
}
