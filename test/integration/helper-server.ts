import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { ownerLabels } from '../../src/labels.js';
import { python } from '../../src/runtimes/python.js';
import { instance } from './support.js';

/**
 * A server that a network test starts as a plain container beside what it tests (an HTTP
 * server, an echo server): the python runtime image running `command`, on a network the
 * test made, with every capability dropped, a read-only root and an init. testcontainers
 * starts and stops it; its reaper cannot be pulled here (TESTCONTAINERS_RYUK_DISABLED, set
 * by vitest.config.ts), so the container carries the suite's own labels (role `test`, this
 * run's instance) and the global teardown finds it whatever happens.
 */
class HelperServerContainer extends GenericContainer {
  constructor(command: readonly string[], networkId: string, name?: string) {
    super(python.tag);
    this.withCommand([...command]).withLabels(ownerLabels('test', instance())).withNetworkMode(networkId).withDroppedCapabilities('ALL');
    if (name) this.withName(name);
    this.hostConfig.ReadonlyRootfs = true;
    this.hostConfig.Init = true;
  }
}

export interface HelperServer extends AsyncDisposable {
  readonly container: StartedTestContainer;
  /** Its address on the test's network. */
  readonly ip: string;
  stop(): Promise<void>;
}

/** Start a helper server on the network with that id (the test made it, with its own labels). */
export async function startHelperServer(command: readonly string[], networkId: string, name?: string): Promise<HelperServer> {
  const container = await new HelperServerContainer(command, networkId, name).start();
  const network = container.getNetworkNames()[0];
  const ip = network ? container.getIpAddress(network) : '';
  const stop = async () => {
    await container.stop({ timeout: 1 });
  };
  return { container, ip, stop, [Symbol.asyncDispose]: stop };
}
