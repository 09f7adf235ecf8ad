import net from 'node:net';
import path from 'node:path';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { ensureRuntimeImage, runtimeImage, silentLogger, type Docker } from '../index.js';
import { REAPER_PORT, REAPER_SCRIPT } from './reaper-script.js';

/** A running reaper, and the connection whose end makes it remove everything. */
export interface Reaper {
  /** End the connection and stop the reaper (it removes what is left first). */
  stop(): Promise<void>;
}

/**
 * Start the reaper of one test environment (reaper-script.ts) as a testcontainers
 * container, from the node runtime image, and hold a connection to it. If this process
 * dies, the connection ends and the reaper removes the environment's containers, networks,
 * volumes and home folder. It carries testcontainers' own labels too, so where Ryuk runs it
 * is removed with the test session as well.
 */
export async function startReaper(docker: Docker, instance: string, folders: readonly string[]): Promise<Reaper> {
  const image = await ensureRuntimeImage(docker, runtimeImage('node'), { log: silentLogger });
  const container: StartedTestContainer = await new GenericContainer(image.tag)
    .withUser('0:0')
    .withEntrypoint(['node', '--input-type=module', '-e', REAPER_SCRIPT])
    .withCommand([])
    // A folder's parent is mounted, not the folder: a mount point itself cannot be removed.
    .withEnvironment({ REAP_INSTANCE: instance, REAP_FOLDERS: JSON.stringify(folders.map((f) => path.basename(f))) })
    .withBindMounts([{ source: '/var/run/docker.sock', target: '/var/run/docker.sock' }, ...folders.map((f, i) => ({ source: path.dirname(f), target: `/reap/${i}` }))])
    .withLabels({ 'io.logomesh.owner': 'logomesh', 'io.logomesh.role': 'test', 'io.logomesh.reaper-of': instance })
    .withExposedPorts(REAPER_PORT)
    .withAutoRemove(true)
    .withWaitStrategy(Wait.forLogMessage('reaper listening'))
    .start();
  const socket = await connect(container.getHost(), container.getMappedPort(REAPER_PORT));
  // The connection must not keep a test process alive on its own.
  socket.unref();
  let stopping: Promise<void> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        socket.destroy();
        await container.stop({ remove: true, timeout: 10_000 }).catch(() => undefined);
      })()),
  };
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
    socket.on('error', () => undefined);
  });
}
