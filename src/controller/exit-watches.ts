import type { Logger } from '../log.js';
import { CgroupEnd } from '../monitor/cgroup-end.js';
import { cgroupDirsOf } from '../monitor/cgroups.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import type { Workload } from './backend.js';

interface Armed {
  readonly container: Workload;
  /** Absent while the container's cgroup is being found. */
  end?: CgroupEnd;
}

/**
 * The kernel's word that a plugin container's processes are gone (monitor/cgroup-end.ts),
 * for the plugins that keep a warm standby: one watch per plugin, on its current container.
 * A watch ends when it fires, when the plugin's timers stop (a failure, a stop, a switch:
 * `close`), or when another container of the plugin is armed; so none outlives its
 * container. Without a unified cgroup dir for the container (a pure cgroup v1 host, a
 * controller that cannot see the host's /proc, Kubernetes) nothing is armed and the engine's
 * report alone tells the exit, as without a standby.
 */
export class ExitWatches {
  private readonly armed = new Map<string, Armed>();

  constructor(private readonly log: Logger) {}

  /**
   * Watch this container of the plugin (its current one); `onGone` is told once when its
   * processes are gone (a stop too: the caller checks). Resolves once the watch is in place or
   * cannot be. Never throws.
   */
  async arm(pluginId: string, container: Workload, onGone: () => void): Promise<void> {
    if (this.armed.get(pluginId)?.container === container) return;
    this.close(pluginId);
    if (!(container instanceof PluginContainer)) return;
    const a: Armed = { container };
    this.armed.set(pluginId, a);
    let dir: string | undefined;
    try {
      const info = await container.inspect();
      // Ended already, or another container armed meanwhile: the engine's report tells it.
      if (!info.State.Running || this.armed.get(pluginId) !== a) return;
      dir = cgroupDirsOf(info.State.Pid).unified;
      if (!dir) throw new Error('no unified (cgroup v2) dir holds its processes');
      // The pid was read before its cgroup: a process that ended between the two, its pid taken
      // by another container's, would have the wrong cgroup watched (and its end switch this plugin).
      if (!dir.includes(info.Id)) throw new Error(`process ${info.State.Pid} is no longer the container's (its cgroup is ${dir})`);
      a.end = CgroupEnd.watch(dir, () => {
        if (this.armed.get(pluginId) === a) this.armed.delete(pluginId);
        // Called from an inotify callback: a failure here must not end the controller; the engine's report remains.
        try {
          onGone();
        } catch (err) {
          this.log.error({ plugin: pluginId, err: (err as Error).stack ?? String(err) }, "handling the end of a container's processes failed; its exit is handled when the engine reports it");
        }
      });
    } catch (err) {
      if (this.armed.get(pluginId) === a) this.armed.delete(pluginId);
      this.log.debug({ plugin: pluginId, dir, err: (err as Error).message }, "the end of the container's processes is not watched; its exit is known from the engine");
    }
  }

  /** A prompt that the plugin's processes may be gone (its hub connection closed): read its cgroup now. */
  check(pluginId: string): void {
    this.armed.get(pluginId)?.end?.check();
  }

  /** Stop watching the plugin's container (its inotify watch is removed). */
  close(pluginId: string): void {
    const a = this.armed.get(pluginId);
    if (!a) return;
    this.armed.delete(pluginId);
    a.end?.close();
  }

  /** How many watches are in place (tests: none left behind). */
  get size(): number {
    return this.armed.size;
  }
}
