import { request } from 'node:http';
import { LogoMeshError, type ErrorCode } from '../errors.js';

// What the client throws, for callers that only load the client (the CLI's control commands).
export { isLogoMeshError, LogoMeshError } from '../errors.js';
import { resolveHome, type Home } from '../controller/home.js';
import type { ApplyResult, ChangedLimit, ControllerStatus, LimitChange, PathGrantAnswer, PluginStatus, ResourceUsage, SegmentRow, StatsRow } from '../controller/types.js';

/** The CLI's side of the control socket (see server.ts). */
export class ControlClient {
  constructor(private readonly socketPath: string) {}

  /** The client of the controller of a home (LOGOMESH_HOME, else the default home); `home` says where it is. */
  static forHome(env: NodeJS.ProcessEnv = process.env): ControlClient & { readonly home: Home } {
    const home = resolveHome(env);
    return Object.assign(new ControlClient(home.controlSocket), { home });
  }

  plugins(): Promise<PluginStatus[]> {
    return this.json('GET', '/v1/plugins') as Promise<PluginStatus[]>;
  }

  /** The shared-memory pool's segments: owner, size, holders, mode, age. */
  segments(): Promise<SegmentRow[]> {
    return this.json('GET', '/v1/segments') as Promise<SegmentRow[]>;
  }

  /** The JSON Schemas a plugin declares for a method's params and result. */
  methodSchemas(id: string, method: string): Promise<{ params?: object; result?: object }> {
    return this.json('GET', `/v1/plugins/${encodeURIComponent(id)}/schema?method=${encodeURIComponent(method)}`) as Promise<{ params?: object; result?: object }>;
  }

  status(): Promise<ControllerStatus> {
    return this.json('GET', '/v1/status') as Promise<ControllerStatus>;
  }

  async call(target: string, method: string, data: unknown, timeout?: number): Promise<unknown> {
    const r = (await this.json('POST', '/v1/call', { target, method, data, ...(timeout ? { timeout } : {}) })) as { data: unknown };
    return r.data;
  }

  action(id: string, action: 'stop' | 'start' | 'restart'): Promise<PluginStatus> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/${action}`) as Promise<PluginStatus>;
  }

  permission(id: string, action: 'revoke' | 'grant', method: string, ttlMs?: number): Promise<unknown> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/${action}`, { method, ...(ttlMs ? { ttlMs } : {}) });
  }

  /** Grant or revoke a host path (`<host-path>[:<container-path>]`; for revoke, its name or host path). */
  pathPermission(id: string, action: 'revoke' | 'grant', target: string, opts: { write?: boolean; ttlMs?: number } = {}): Promise<PathGrantAnswer> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/${action}`, { kind: 'path', path: target, ...(opts.write ? { write: true } : {}), ...(opts.ttlMs ? { ttlMs: opts.ttlMs } : {}) }) as Promise<PathGrantAnswer>;
  }

  /**
   * Take a manifest host (`host:port`, as listed) off a plugin's allow-list, or give it back.
   * `live`: a running plugin's proxy refuses it from now on (revoke only).
   */
  hostPermission(id: string, action: 'revoke' | 'grant', host: string): Promise<{ host: string; live?: boolean; state: string }> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/${action}`, { kind: 'host', host }) as Promise<{ host: string; live?: boolean; state: string }>;
  }

  /** Take a topic pattern (as the manifest lists it) away from a plugin, or give it back (for `ttlMs` only, if given). */
  topicPermission(id: string, action: 'revoke' | 'grant', topic: string, ttlMs?: number): Promise<{ topic: string }> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/${action}`, { kind: 'topic', topic, ...(ttlMs ? { ttlMs } : {}) }) as Promise<{ topic: string }>;
  }

  /** Make the running set what the plugin folders under `dir` (absolute) say; see docs/deploys.md. */
  apply(dir: string, opts: { dryRun?: boolean; prune?: boolean } = {}): Promise<ApplyResult> {
    return this.json('POST', '/v1/apply', { dir, ...(opts.dryRun ? { dryRun: true } : {}), ...(opts.prune ? { prune: true } : {}) }) as Promise<ApplyResult>;
  }

  /** Load the plugin folders under `dir` (absolute) and start them; their ids. */
  async load(dir: string): Promise<string[]> {
    return ((await this.json('POST', '/v1/load', { dir })) as { loaded: string[] }).loaded;
  }

  /** Stop a plugin and forget it. */
  async unload(id: string): Promise<void> {
    await this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/unload`, {});
  }

  /** Every running plugin's usage and processes (`logomesh stats`). */
  stats(): Promise<StatsRow[]> {
    return this.json('GET', '/v1/stats') as Promise<StatsRow[]>;
  }

  /** One running plugin's usage (the spec's getCurrentUsage). */
  usage(id: string): Promise<ResourceUsage> {
    return this.json('GET', `/v1/plugins/${encodeURIComponent(id)}/usage`) as Promise<ResourceUsage>;
  }

  /** Change a running plugin's limits live; `by` says who asked (recorded in the audit trail). */
  limits(id: string, change: LimitChange, by?: string): Promise<{ plugin: string; changed: ChangedLimit[] }> {
    return this.json('POST', `/v1/plugins/${encodeURIComponent(id)}/limits`, { ...change, ...(by ? { by } : {}) }) as Promise<{ plugin: string; changed: ChangedLimit[] }>;
  }

  down(): Promise<unknown> {
    return this.json('POST', '/v1/down');
  }

  /** Stream a plugin's log lines to `out`; with follow, until the controller or caller ends it. */
  logs(id: string, lines: number, follow: boolean, out: NodeJS.WritableStream): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path: `/v1/plugins/${encodeURIComponent(id)}/logs?lines=${lines}${follow ? '&follow=1' : ''}` }, (res) => {
        if (res.statusCode !== 200) {
          collect(res).then((body) => reject(toError(body, res.statusCode)), reject);
          return;
        }
        res.pipe(out, { end: false });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', (err) => reject(unavailable(this.socketPath, err)));
      req.end();
    });
  }

  /** Follow a plugin's new output lines, each to `write`, until `signal` aborts or the controller ends it. */
  followLogs(id: string, write: (line: string) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path: `/v1/plugins/${encodeURIComponent(id)}/logs?lines=0&follow=1`, signal }, (res) => {
        if (res.statusCode !== 200) {
          collect(res).then((body) => reject(toError(body, res.statusCode)), reject);
          return;
        }
        let partial = '';
        res.on('data', (c: Buffer) => {
          const parts = (partial + c.toString('utf8')).split('\n');
          partial = parts.pop() ?? '';
          for (const p of parts) write(p);
        });
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.on('error', (err) => (signal.aborted ? resolve() : reject(unavailable(this.socketPath, err))));
      req.end();
    });
  }

  private json(method: string, path: string, body?: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { socketPath: this.socketPath, method, path, headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {} },
        (res) => {
          collect(res).then((text) => {
            if (res.statusCode === 200) resolve(JSON.parse(text));
            else reject(toError(text, res.statusCode));
          }, reject);
        },
      );
      req.on('error', (err) => reject(unavailable(this.socketPath, err)));
      req.end(payload);
    });
  }
}

async function collect(res: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function toError(text: string, status?: number): LogoMeshError {
  try {
    const { error } = JSON.parse(text) as { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };
    return new LogoMeshError(error.code, error.message, error.details ?? {});
  } catch {
    return new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `controller answered ${status}: ${text.slice(0, 200)}`, {});
  }
}

function unavailable(socketPath: string, err: Error): LogoMeshError {
  return new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `no controller answers at ${socketPath} (${err.message}); start one with 'logomesh up'`, {
    file: socketPath,
    expected: 'a running controller',
    found: err.message,
  });
}
