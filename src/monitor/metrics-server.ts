import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MonitorMetrics } from './metrics.js';

/** Where the endpoint listens: `LOGOMESH_METRICS=[host:]port`. Unset: no endpoint (the default). */
export const METRICS_ENV = 'LOGOMESH_METRICS';
/** Set to 1 to allow an address other than loopback (metrics name plugins and their methods). */
export const METRICS_PUBLIC_ENV = 'LOGOMESH_METRICS_PUBLIC';

export interface MetricsAddress {
  readonly host: string;
  readonly port: number;
}

function loopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The endpoint's address from the environment, or undefined when it is off. Throws
 * LM_METRICS_ENDPOINT for a bad value, or a non-loopback host without LOGOMESH_METRICS_PUBLIC=1.
 */
export function metricsAddress(env: NodeJS.ProcessEnv = process.env): MetricsAddress | undefined {
  const raw = env[METRICS_ENV]?.trim();
  if (!raw) return undefined;
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(raw);
  const host = m?.[1] || '127.0.0.1';
  const port = Number(m?.[2]);
  if (!m || port < 0 || port > 65535 || (host !== 'localhost' && isIP(host) === 0)) {
    throw new LogoMeshError('LM_METRICS_ENDPOINT', `${METRICS_ENV}=${raw}: expected [host:]port with an IP address or localhost and a port from 0 to 65535`, {
      path: METRICS_ENV,
      expected: '[host:]port, such as 9464 or 127.0.0.1:9464',
      found: raw,
    });
  }
  if (!loopback(host) && env[METRICS_PUBLIC_ENV] !== '1') {
    throw new LogoMeshError('LM_METRICS_ENDPOINT', `metrics endpoint ${host}:${port} is not a loopback address; set ${METRICS_PUBLIC_ENV}=1 to expose metrics beyond this host`, {
      path: METRICS_ENV,
      expected: 'a loopback address (127.0.0.1, ::1, localhost)',
      found: host,
    });
  }
  return { host, port };
}

export interface MetricsEndpoint {
  /** http://host:port/metrics */
  readonly url: string;
  close(): Promise<void>;
}

/** Serve `GET /metrics` (Prometheus text format) at `address`; anything else is 404 or 405. */
export async function startMetricsEndpoint(metrics: MonitorMetrics, address: MetricsAddress, log: Logger): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => {
        log.error({ err: err.message }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new LogoMeshError('LM_METRICS_ENDPOINT', `metrics endpoint cannot listen on ${address.host}:${address.port}: ${err.message}`, { found: err.message }, { cause: err })));
    server.listen(address.port, address.host, () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : address.port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  log.info({ url: `http://${host}:${port}/metrics` }, 'metrics endpoint listening');
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
