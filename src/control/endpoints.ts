import { rmSync, writeFileSync } from 'node:fs';
import { consoleAddress } from '../console/address.js';
import { openConsole } from '../console/open.js';
import type { ConsoleEndpoint } from '../console/server.js';
import type { Controller } from '../controller/controller.js';
import type { Logger } from '../log.js';
import { metricsAddress, startMetricsEndpoint, type MetricsEndpoint } from '../monitor/metrics-server.js';
import { serveControl } from './server.js';

/** What a running controller offers its home: the control socket and the hub's TCP endpoint. */
export interface Endpoints {
  /** The hub's TCP port for host clients. */
  readonly port: number;
  /** The Prometheus endpoint's URL, when LOGOMESH_METRICS turned it on. */
  readonly metricsUrl?: string;
  /** The operator's console URL, when LOGOMESH_CONSOLE turned it on (docs/console.md). */
  readonly consoleUrl?: string;
  /** Close both and remove the control socket, token and port files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Open the control socket, listen for host clients (LOGOMESH_HUB_PORT, LOGOMESH_HUB_BIND;
 * default a free port on 127.0.0.1), and write the token (0600) and port into the home.
 * With LOGOMESH_METRICS=[host:]port, also serve the Prometheus metrics there (loopback
 * unless LOGOMESH_METRICS_PUBLIC=1; docs/monitoring.md#scraping). With LOGOMESH_CONSOLE=[host:]port,
 * also serve the operator's console (loopback unless LOGOMESH_CONSOLE_PUBLIC=1; docs/console.md).
 */
export async function openEndpoints(host: Controller, log: Logger, onDown: () => void, env: NodeJS.ProcessEnv = process.env): Promise<Endpoints> {
  const { home } = host;
  const metricsAt = metricsAddress(env); // throws LM_METRICS_ENDPOINT before anything listens
  consoleAddress(env); // and LM_CONSOLE_ENDPOINT
  const control = await serveControl(host, home.controlSocket, log, onDown);
  let metrics: MetricsEndpoint | undefined;
  let console: ConsoleEndpoint | undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await metrics?.close();
      await console?.close();
      control.closeAllConnections();
      await new Promise<void>((r) => control.close(() => r()));
      for (const f of [home.controlSocket, home.tokenFile, home.portFile]) rmSync(f, { force: true });
    })());
  try {
    const port = await host.hub.listenHost(Number(process.env.LOGOMESH_HUB_PORT ?? 0), process.env.LOGOMESH_HUB_BIND ?? '127.0.0.1');
    writeFileSync(home.tokenFile, `${host.token}\n`, { mode: 0o600 });
    writeFileSync(home.portFile, `${port}\n`);
    if (metricsAt) metrics = await startMetricsEndpoint(host.metrics, metricsAt, log);
    console = await openConsole(host, home.dir, log, env);
    return { port, close, ...(metrics ? { metricsUrl: metrics.url } : {}), ...(console ? { consoleUrl: console.url } : {}) };
  } catch (err) {
    await close();
    throw err;
  }
}
