import { chmodSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isLogoMeshError, LogoMeshError } from '../errors.js';
import type { Controller } from '../controller/controller.js';
import type { Logger } from '../log.js';
import { deployRoute } from './deploy-routes.js';
import { monitorRoute } from './monitor-routes.js';

/**
 * The controller's control socket: a small JSON-over-HTTP API on a Unix socket that only
 * the controller's user can reach (0600). The CLI's ps, call, logs, stop, start, restart and
 * down go through it.
 *
 *   GET  /v1/plugins                      -> PluginStatus[]
 *   GET  /v1/status                       -> {engine, home, plugins}
 *   POST /v1/call {target,method,data,timeout} -> {data} | {error}
 *   POST /v1/plugins/:id/(stop|start|restart)
 *   POST /v1/plugins/:id/check {action, resource} -> {allowed, reason}
 *   POST /v1/plugins/:id/(revoke|grant) {method, ttlMs?}
 *   POST /v1/plugins/:id/(revoke|grant) {kind: 'path', path, write?, ttlMs?}
 *                                         host path grants; the plugin's container is recreated
 *   POST /v1/plugins/:id/(revoke|grant) {kind: 'host', host}
 *                                         a manifest host on or off the network allow-list
 *   POST /v1/plugins/:id/(revoke|grant) {kind: 'topic', topic, ttlMs?}
 *                                         a declared topic pattern taken away or given back
 *   GET  /v1/plugins/:id/logs?lines=n&follow=1  -> text lines (streamed with follow)
 *   GET  /v1/segments                     -> SegmentRow[] (the shared-memory pool)
 *   GET  /v1/plugins/:id/schema?method=m  -> {params?, result?} (coordination.methodSchemas)
 *   POST /v1/down                         -> stops everything; the controller exits
 *   POST /v1/apply {dir, dryRun?, prune?}  -> ApplyResult (deploy-routes.ts)
 *   POST /v1/load {dir}                   -> {loaded: ids}
 *   POST /v1/plugins/:id/unload           -> {unloaded: id}
 *   GET  /v1/stats, GET /v1/plugins/:id/usage, POST /v1/plugins/:id/limits: monitor-routes.ts
 */
export async function serveControl(host: Controller, socketPath: string, log: Logger, onDown: () => void): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    handle(host, req, res, onDown).catch((err: unknown) => {
      log.error({ err }, 'control request failed');
      sendError(res, err);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

async function handle(host: Controller, req: IncomingMessage, res: ServerResponse, onDown: () => void): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control');
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] !== 'v1') return sendJson(res, 404, { error: { code: 'LM_USAGE', message: `unknown path ${url.pathname}` } });
  const [, what, id, action] = parts;
  const deploy = deployRoute(req.method, what, id, action);
  if (deploy) return sendJson(res, 200, await deploy(host, (await readJson(req)) as Record<string, unknown>));
  if (req.method === 'GET' && what === 'plugins' && !id) return sendJson(res, 200, host.list());
  if (req.method === 'GET' && what === 'segments' && !id) return sendJson(res, 200, host.memory.list());
  if (req.method === 'GET' && what === 'status') return sendJson(res, 200, { engine: host.engineStatus(), home: host.home.dir, plugins: host.list() });
  if (req.method === 'POST' && what === 'call') {
    const body = (await readJson(req)) as { target?: string; method?: string; data?: unknown; timeout?: number };
    if (typeof body.target !== 'string' || typeof body.method !== 'string') {
      throw new LogoMeshError('LM_USAGE', "call needs 'target' and 'method'", {});
    }
    const data = await host.call(body.target, body.method, body.data ?? {}, body.timeout);
    return sendJson(res, 200, { data });
  }
  if (req.method === 'POST' && what === 'plugins' && id && (action === 'revoke' || action === 'grant')) {
    const body = (await readJson(req)) as { kind?: string; method?: string; path?: string; host?: string; topic?: string; write?: boolean; ttlMs?: number };
    if (body.kind === 'topic') {
      if (typeof body.topic !== 'string') throw new LogoMeshError('LM_USAGE', `${action} of a topic needs 'topic'`, {});
      if (body.ttlMs !== undefined && !(action === 'grant' && typeof body.ttlMs === 'number' && body.ttlMs > 0)) throw new LogoMeshError('LM_USAGE', "'ttlMs' must be a positive number, and applies to grant only", {});
      if (action === 'revoke') host.revokeTopic(id, body.topic);
      else host.grantTopic(id, body.topic, body.ttlMs);
      return sendJson(res, 200, { plugin: id, topic: body.topic, [action === 'revoke' ? 'revoked' : 'granted']: true });
    }
    if (body.kind === 'host') {
      if (typeof body.host !== 'string') throw new LogoMeshError('LM_USAGE', `${action} of a host needs 'host'`, {});
      if (action === 'revoke') {
        const live = await host.revokeHost(id, body.host);
        return sendJson(res, 200, { plugin: id, host: body.host, revoked: true, live, state: host.status(id).state });
      }
      await host.grantHost(id, body.host);
      return sendJson(res, 200, { plugin: id, host: body.host, granted: true, state: host.status(id).state });
    }
    if (body.kind === 'path') {
      if (typeof body.path !== 'string') throw new LogoMeshError('LM_USAGE', `${action} of a path needs 'path'`, {});
      if (action === 'revoke') {
        const g = await host.revokePath(id, body.path);
        return sendJson(res, 200, { plugin: id, ...g, revoked: true, state: host.status(id).state });
      }
      if (body.ttlMs !== undefined && !(typeof body.ttlMs === 'number' && body.ttlMs > 0)) throw new LogoMeshError('LM_USAGE', "'ttlMs' must be a positive number", {});
      const g = await host.grantPath(id, body.path, { write: body.write === true, ...(body.ttlMs !== undefined ? { ttlMs: body.ttlMs } : {}) });
      return sendJson(res, 200, { plugin: id, ...g, granted: true, state: host.status(id).state });
    }
    if (typeof body.method !== 'string') throw new LogoMeshError('LM_USAGE', `${action} needs 'method'`, {});
    if (action === 'revoke') host.revokeMethod(id, body.method);
    else host.grantMethod(id, body.method, body.ttlMs);
    return sendJson(res, 200, { plugin: id, method: body.method, [action === 'revoke' ? 'revoked' : 'granted']: true });
  }
  if (req.method === 'GET' && what === 'plugins' && id && action === 'schema') {
    return sendJson(res, 200, host.methodSchemas(id, url.searchParams.get('method') ?? ''));
  }
  if (req.method === 'POST' && what === 'plugins' && id && action === 'check') {
    const body = (await readJson(req)) as { action?: string; resource?: string };
    if (typeof body.action !== 'string' || typeof body.resource !== 'string') throw new LogoMeshError('LM_USAGE', "check needs 'action' and 'resource'", {});
    return sendJson(res, 200, host.checkCapability(id, body.action, body.resource));
  }
  if (req.method === 'POST' && what === 'plugins' && id && action && ['stop', 'start', 'restart'].includes(action)) {
    await host[action as 'stop' | 'start' | 'restart'](id);
    return sendJson(res, 200, host.status(id));
  }
  if (req.method === 'GET' && what === 'plugins' && id && action === 'logs') {
    const lines = Number(url.searchParams.get('lines') ?? 100);
    const tail = host.logs(id, lines);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    for (const l of tail) res.write(`${l.text}\n`);
    if (url.searchParams.get('follow') !== '1') return void res.end();
    const stop = host.followLogs(id, (l) => res.write(`${l.text}\n`));
    res.on('close', stop);
    return;
  }
  const monitored = await monitorRoute(host, req, parts, () => readJson(req));
  if (monitored !== undefined) return sendJson(res, 200, monitored);
  if (req.method === 'POST' && what === 'down') {
    sendJson(res, 200, { stopping: host.list().map((p) => p.id) });
    onDown();
    return;
  }
  sendJson(res, 404, { error: { code: 'LM_USAGE', message: `unknown request ${req.method} ${url.pathname}` } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 16 * 1024 * 1024) throw new LogoMeshError('LM_MESSAGE_TOO_LARGE', 'control request larger than 16 MiB', {});
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch (err) {
    throw new LogoMeshError('LM_USAGE', `control request body is not JSON: ${(err as Error).message}`, {});
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.end();
  const e = isLogoMeshError(err) ? err.toJSON() : { code: 'LM_ENGINE_ERROR', message: String((err as Error)?.message ?? err), details: {} };
  sendJson(res, e.code === 'LM_USAGE' ? 400 : 500, { error: e });
}
