import { performance } from 'node:perf_hooks';
import { isLogoMeshError, loadFolders, preparePluginImage, runtimeImage, type ApplyOptions, type ApplyResult, type Docker, type LoadedManifest, type Logger } from '../index.js';
import { DEBOUNCE_MS, TreeWatcher } from './dev-watch.js';
import type { CliIo } from './io.js';

/** What a dev session reloads into: its own controller, or one it attached to. */
export interface DevTarget {
  apply(opts: ApplyOptions): Promise<ApplyResult>;
  /** Stream a plugin's output lines to `write`; returns the function that stops it. */
  follow(id: string, write: (line: string) => void): () => void;
  methods(id: string): readonly string[] | Promise<readonly string[]>;
  /** Where a plugin's debugger is, in debug mode. */
  debugger?(id: string): { readonly port: number; readonly protocol: 'inspector' | 'dap' | 'delve' | 'gdb' } | undefined;
  /** The engine, to build a changed compiled plugin before the apply (its own controller only). */
  readonly docker?: Docker;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/**
 * When a step's plugin served its new version, from the change: the steps before it, then
 * its own time until the handover (a replaced plugin's old container retires after that,
 * while the new one already serves).
 */
function servedAt(steps: ApplyResult['steps'], step: ApplyResult['steps'][number], beforeApply: number): number {
  const earlier = steps.slice(0, steps.indexOf(step)).reduce((sum, s) => sum + s.ms, 0);
  return beforeApply + earlier + (step.readyMs ?? step.ms);
}

function describe(err: unknown): string {
  if (isLogoMeshError(err)) return `${err.code}: ${err.message}`;
  return String((err as Error)?.stack ?? err);
}

/**
 * The reload loop of `logomesh dev`: one watcher over the folder, and on every change (after
 * a short debounce, one reload at a time) an apply of the folder: only the plugins whose
 * manifest, files or signature changed are replaced, each beside its running version, which
 * keeps serving when the new one fails (a rejected manifest, a build that fails, a start
 * that fails). A compiled plugin is built first, so its build time is reported on its own.
 */
export class DevSession {
  private readonly followed = new Map<string, () => void>();
  private watcher?: TreeWatcher;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private announced = false;
  private callPrefix = '';
  private readonly announcedDebug = new Set<string>();
  /** The last apply was refused: an edit back to the running version is worth a word. */
  private refused = false;

  constructor(
    private readonly dir: string,
    private readonly target: DevTarget,
    private readonly io: CliIo,
    private readonly log: Logger,
    private readonly prune: boolean,
  ) {}

  /** Apply the folder (a failure is printed; the watcher retries on the next change), then watch. */
  async start(callPrefix: string): Promise<void> {
    this.callPrefix = callPrefix;
    this.watcher = new TreeWatcher(
      this.dir,
      (file) => {
        if (this.closed) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.schedule(file), DEBOUNCE_MS);
      },
      (err) => this.io.err(`logomesh dev: watching ${this.dir} failed: ${err.message}; restart logomesh dev`),
    );
    this.schedule(null);
    await this.running;
  }

  /** One reload at a time; changes during a reload cause one more after it. */
  private schedule(changed: string | null): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reload(changed).finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        this.schedule('more changes');
      }
    });
  }

  private async reload(changed: string | null): Promise<void> {
    const t0 = performance.now();
    let plan: ApplyResult;
    try {
      plan = await this.target.apply({ dryRun: true, prune: this.prune });
    } catch (err) {
      const running = [...this.followed.keys()];
      this.refused = true;
      this.io.err(`logomesh dev: the manifest is rejected${running.length ? `; ${running.join(', ')} keeps running the previous version` : ''}\n${describe(err)}`);
      return;
    }
    if (!plan.plan.steps.length) {
      // Back to what runs (a rejected edit undone, say): nothing to replace.
      if (changed && this.refused) this.io.err(`logomesh dev: ${changed} changed; the running version is this one already`);
      this.refused = false;
      return;
    }
    this.refused = false;
    if (changed) this.io.err(`logomesh dev: ${changed} changed; reloading ${plan.plan.steps.map((s) => s.id).join(', ')}`);
    const builds = await this.buildFirst(plan);
    if (builds === undefined || this.closed) return;
    let result: ApplyResult;
    const tApply = performance.now();
    try {
      result = await this.target.apply({ prune: this.prune });
    } catch (err) {
      if (this.closed) return;
      const e = isLogoMeshError(err) ? err : undefined;
      const steps = (e?.details as { steps?: ApplyResult['steps'] } | undefined)?.steps ?? [];
      for (const s of steps.filter((x) => x.ok)) await this.report(s, servedAt(steps, s, tApply - t0), builds);
      const failed = steps.find((x) => !x.ok);
      // Its output was streamed above already: the first line of the error says enough.
      const streamed = e && ['LM_PLUGIN_EXITED', 'LM_START_TIMEOUT'].includes(e.code);
      const text = streamed ? `${describe(err).split('\n')[0]!.replace(/; last output:$/, '')} (its output is above)` : describe(err);
      this.io.err(`logomesh dev: ${failed?.id ?? 'a plugin'} did not start; fix it and save again${failed?.action === 'replace' ? ' (the previous version keeps running)' : ''}\n${text}`);
      return;
    }
    for (const s of result.steps) await this.report(s, servedAt(result.steps, s, tApply - t0), builds);
  }

  /**
   * Build the compiled plugins the plan adds or replaces, while their running versions go
   * on: a compile error leaves them running. Returns the build time of each (undefined: a
   * build failed, nothing is applied).
   */
  private async buildFirst(plan: ApplyResult): Promise<Map<string, number> | undefined> {
    const times = new Map<string, number>();
    const acting = new Set(plan.plan.steps.filter((s) => s.action !== 'remove').map((s) => s.id));
    if (!this.target.docker || !acting.size) return times;
    let manifests: LoadedManifest[];
    try {
      manifests = loadFolders(this.dir);
    } catch {
      return times; // the apply reports it
    }
    for (const loaded of manifests) {
      const { id, runtime } = loaded.manifest;
      const rt = runtimeImage(runtime);
      if (!acting.has(id) || !rt.compile) continue;
      this.io.err(`logomesh dev: building ${id} (${runtime})`);
      const b0 = performance.now();
      try {
        await preparePluginImage(this.target.docker, rt, loaded, { log: this.log, progress: this.io.stderr });
      } catch (err) {
        this.io.err(`logomesh dev: the build of ${id} failed${this.followed.has(id) ? '; the previous version keeps running' : ''}\n${describe(err)}`);
        return undefined;
      }
      times.set(id, performance.now() - b0);
    }
    return times;
  }

  /** Say what a step did; `ms`: from the change until the plugin served its new version. */
  private async report(step: ApplyResult['steps'][number], ms: number, builds: Map<string, number>): Promise<void> {
    const { id } = step;
    if (step.action === 'remove') {
      this.followed.get(id)?.();
      this.followed.delete(id);
      this.io.err(`logomesh dev: ${id} removed (its folder is gone)`);
      return;
    }
    if (!this.followed.has(id)) this.followed.set(id, this.target.follow(id, (line) => this.io.stdout.write(`${id} | ${line}\n`)));
    const build = builds.get(id);
    const parts = build !== undefined ? ` (build ${seconds(build)}, restart ${seconds(step.readyMs ?? step.ms)})` : '';
    const methods = (await this.target.methods(id)).join(', ') || 'none';
    const verb = step.action === 'replace' ? 'reloaded' : 'started';
    this.io.err(`logomesh dev: ${id} ${verb} in ${seconds(ms)}${parts}; methods: ${methods}`);
    const dbg = this.target.debugger?.(id);
    if (dbg && !this.announcedDebug.has(id)) {
      this.announcedDebug.add(id);
      const how = { inspector: 'Node.js inspector: VS Code "attach" (type node)', dap: 'debugpy (DAP): VS Code "attach" (type debugpy)', delve: 'delve: VS Code "attach" (type go, mode remote)', gdb: 'gdb remote protocol: target remote, or VS Code cppdbg with miDebuggerServerAddress' }[dbg.protocol];
      this.io.err(`logomesh dev: ${id} debugger on 127.0.0.1:${dbg.port} (${how}, "port": ${dbg.port}; docs/debugging.md)`);
    }
    if (!this.announced) {
      this.announced = true;
      const method = (await this.target.methods(id))[0] ?? '<method>';
      this.io.err(`logomesh dev: call it from another terminal: ${this.callPrefix}logomesh call ${id}.${method} '{}'`);
    }
  }

  /**
   * Stop watching, and give a reload in progress a moment to finish. Not longer: a start
   * that has not happened yet is refused once the controller closes, and one in progress
   * is stopped by the close, so nothing is left either way.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    for (const stop of this.followed.values()) stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running?.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
    clearTimeout(timer);
  }
}
