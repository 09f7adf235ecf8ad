import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { LABEL } from '../labels.js';
import { hasOperatorMounts } from '../sandbox/container-mounts.js';
import { HUB_MOUNT } from '../sandbox/container-spec.js';
import { isNetworked } from '../sandbox/egress.js';
import { removeStagingLeftovers } from '../sandbox/mount-staging.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import type { ControllerContext } from './context.js';
import { pluginSocketDir } from './home.js';
import type { Launcher, Supervision } from './launcher.js';
import { serialize, type Managed } from './managed.js';
import { DEFAULTS } from './options.js';
import { readyOrExit, waitReady, type ReadyWait } from './readiness.js';
import { STANDBY_SUFFIX } from './standby.js';
import { endAdoptedBoost, engineCpuUpdate } from './startup-boost.js';

/**
 * After a controller was killed (or the machine restarted), its successor of the same home
 * finds the containers it left, by label: it adopts each running one whose plugin is
 * loaded with the same manifest (its SDK reconnects to the recreated socket and says hello
 * again), and removes every other one, duplicates included. Once, before the first start.
 */
export class Adoption {
  private reconciled?: Promise<void>;

  constructor(
    private readonly cx: ControllerContext,
    private readonly launcher: Launcher,
    private readonly supervision: Supervision,
  ) {}

  reconcile(): Promise<void> {
    this.reconciled ??= this.run();
    return this.reconciled;
  }

  private async run(): Promise<void> {
    const { cx } = this;
    await removeStagingLeftovers(cx.log); // of a controller or run killed between staging and start
    const filters = JSON.stringify({ label: [`${LABEL.instance}=${cx.home.instance}`, `${LABEL.role}=plugin`] });
    const found = (await cx.docker.listContainers({ all: true, filters })).sort((a, b) => b.Created - a.Created);
    const taken = new Set<string>();
    const adoptions: Promise<void>[] = [];
    for (const c of found) {
      const id = c.Labels[LABEL.plugin] ?? '';
      const m = cx.registry.find(id);
      // Never adopted: a networked plugin (its network and proxy went with the earlier
      // controller; it is started anew, and its host revocations applied to the new
      // allow-list), or a container whose operator path grants are not exactly the ones
      // restored from state.json (one was dropped, ran out, or was never saved), or a warm
      // standby never switched in (its name still says so: it never served).
      const socketDir = c.Mounts.find((x) => x.Destination === HUB_MOUNT)?.Source;
      const usable =
        m &&
        socketDir !== undefined &&
        path.dirname(socketDir) === cx.home.socketsDir &&
        (path.basename(socketDir) === id || path.basename(socketDir).startsWith(`${id}.`)) &&
        !c.Names.some((n) => n.endsWith(STANDBY_SUFFIX)) &&
        !taken.has(id) &&
        c.State === 'running' &&
        c.Labels[LABEL.manifestHash] === m.loaded.hash &&
        m.state === 'loaded' &&
        !isNetworked(m.loaded.manifest) &&
        hasOperatorMounts(c, cx.grants.paths(id));
      if (!usable) {
        cx.log.warn({ plugin: id, container: c.Id.slice(0, 12), state: c.State }, 'removing a plugin container left by an earlier controller');
        await PluginContainer.adopt(cx.docker, c.Id, cx.log).remove();
        continue;
      }
      taken.add(id);
      // A container started by a deploy's replacement uses the plugin's other socket folder.
      m.generation = socketDir === pluginSocketDir(cx.home, id, 1) ? 1 : 0;
      adoptions.push(serialize(m, () => this.adopt(m, c.Id, socketDir, c.Labels)));
    }
    await Promise.allSettled(adoptions);
  }

  /** `socketDir`: where its hub socket was (its own folder: the plugin's first, or a standby's it switched to). */
  private async adopt(m: Managed, containerId: string, socketDir: string, labels: Readonly<Record<string, string>>): Promise<void> {
    const { cx } = this;
    const { id } = m.loaded.manifest;
    m.state = 'starting';
    delete m.boost;
    const container = PluginContainer.adopt(cx.docker, containerId, cx.log.child({ plugin: id }));
    m.container = container;
    // Listen before the socket exists: the running plugin reconnects the moment it appears.
    let ready: ReadyWait | undefined;
    try {
      // The earlier controller was killed during its start-up boost: nothing else would ever lower it.
      const lowered = await endAdoptedBoost(labels, () => container.inspect(), containerId, engineCpuUpdate(cx.docker));
      if (lowered) {
        const reason = `adopted by a new controller while boosted: CPU quota ${lowered.from}% -> ${lowered.to}%`;
        cx.audit.record({ who: 'controller', action: 'boost', resource: id, result: 'ended', reason });
        cx.log.info({ plugin: id, container: containerId.slice(0, 12) }, reason);
      }
      await cx.hub.detachPlugin(id);
      ready = waitReady(cx.hub, m, cx.opts.startTimeoutMs ?? DEFAULTS.startTimeoutMs);
      await this.launcher.attachHub(m, socketDir);
      m.drainOutput = await container.attach(m.logs.writable('stdout'), m.logs.writable('stderr'), false);
      const exited = container.wait();
      this.supervision.watchExit(m, container, exited);
      await readyOrExit(m, ready, exited, { audit: cx.audit.record, kernel: cx.kernel });
      m.state = 'ready';
      m.readySince = Date.now();
      m.startedAt = Date.now();
      await this.supervision.startHealth(m);
      cx.log.info({ plugin: id, container: containerId.slice(0, 12) }, 'adopted a running plugin container');
      cx.persist();
    } catch (err) {
      ready?.cancel();
      if (err instanceof LogoMeshError && err.code === 'LM_BOOST_FAILED') cx.audit.record({ who: 'controller', action: 'boost', resource: id, result: 'failed', code: err.code, reason: err.message });
      cx.log.warn({ plugin: id, err: (err as Error).message }, 'could not adopt a running plugin container; it is removed and started anew');
      await this.launcher.teardown(m);
      delete m.container;
      m.state = 'loaded';
    }
  }
}
