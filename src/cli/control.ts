import { ControlClient, LogoMeshError } from '../control/client.js';
import type { CliIo } from './io.js';
import { psTable } from './ps.js';
import { segmentsTable } from './segments.js';

function client(): ControlClient {
  return ControlClient.forHome();
}

export async function psCommand(json: boolean, io: CliIo): Promise<number> {
  const { engine, plugins } = await client().status();
  io.out(json ? JSON.stringify(plugins, null, 2) : psTable(plugins));
  if (!engine.up) io.err(`LM_ENGINE_UNAVAILABLE: the Docker engine has not answered since ${new Date(engine.since).toISOString()} (${engine.lastError ?? 'unknown'}); the controller keeps retrying`);
  return 0;
}

/** `segments [--json]`: the shared-memory pool's segments (owner, size, holders, mode, age). */
export async function segmentsCommand(json: boolean, io: CliIo): Promise<number> {
  const rows = await client().segments();
  io.out(json ? JSON.stringify(rows, null, 2) : segmentsTable(rows));
  return 0;
}

/**
 * `schema <plugin>.<method>`: the JSON Schemas the running plugin's manifest declares for the
 * method; `schema --sample '<json>'`: a schema drafted from a sample value (no controller).
 */
export async function schemaCommand(target: string | undefined, sample: string | undefined, io: CliIo): Promise<number> {
  if (sample !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(sample);
    } catch (err) {
      throw new LogoMeshError('LM_USAGE', `--sample must be JSON: ${(err as Error).message}`, {});
    }
    io.out(JSON.stringify((await import('../index.js')).generateSchema(value), null, 2));
    return 0;
  }
  const dot = target?.indexOf('.') ?? -1;
  if (!target || dot <= 0 || dot === target.length - 1) throw new LogoMeshError('LM_USAGE', `schema needs <plugin>.<method>, or --sample '<json>'`, {});
  io.out(JSON.stringify(await client().methodSchemas(target.slice(0, dot), target.slice(dot + 1)), null, 2));
  return 0;
}

/**
 * `call <plugin>.<method> [json-args] [--timeout ms] [--json]`: the JSON result on stdout.
 * With --json a failed call prints its whole coded error too, details included, as
 * `{"error": {"code", "message", "details"}}` on stdout (exit 1), for scripts to read.
 */
export async function callCommand(target: string, argsText: string | undefined, timeout: number | undefined, io: CliIo, json = false): Promise<number> {
  const dot = target.indexOf('.');
  if (dot <= 0 || dot === target.length - 1) throw new LogoMeshError('LM_USAGE', `call needs <plugin>.<method>, found '${target}'`, {});
  let data: unknown = {};
  if (argsText !== undefined) {
    try {
      data = JSON.parse(argsText);
    } catch (err) {
      throw new LogoMeshError('LM_USAGE', `the arguments must be JSON: ${(err as Error).message}`, { found: argsText });
    }
  }
  let result: unknown;
  try {
    result = await client().call(target.slice(0, dot), target.slice(dot + 1), data, timeout);
  } catch (err) {
    if (!json || !(err instanceof LogoMeshError) || err.code === 'LM_CONTROLLER_UNAVAILABLE') throw err;
    io.out(JSON.stringify({ error: err.toJSON() }, null, 2));
    return 1;
  }
  io.out(JSON.stringify(result, null, 2));
  return 0;
}

export async function logsCommand(id: string, lines: number, follow: boolean, io: CliIo): Promise<number> {
  await client().logs(id, lines, follow, io.stdout);
  return 0;
}

export async function actionCommand(action: 'stop' | 'start' | 'restart', id: string, io: CliIo): Promise<number> {
  const s = await client().action(id, action);
  io.out(`${s.id}: ${s.state}`);
  return 0;
}

/** `down`: stop every plugin and the controller; waits until the control socket is gone. */
export async function downCommand(io: CliIo): Promise<number> {
  const c = client();
  await c.down();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      await c.plugins();
      await new Promise((r) => setTimeout(r, 100));
    } catch {
      io.err('logomesh: controller stopped');
      return 0;
    }
  }
  throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the controller did not stop within 60 s', {});
}

/** `revoke <plugin> <method>` and `grant <plugin> <method> [--ttl ms]`. */
export async function permissionCommand(action: 'revoke' | 'grant', id: string, method: string, ttlMs: number | undefined, io: CliIo): Promise<number> {
  await client().permission(id, action, method, ttlMs);
  io.out(`${id}: ${method} ${action === 'revoke' ? 'revoked' : `granted${ttlMs ? ` for ${ttlMs} ms` : ''}`}`);
  return 0;
}

/**
 * `grant <plugin> path <host-path>[:<container-path>] [--read|--write] [--ttl ms]` and
 * `revoke <plugin> path <name-or-host-path>`: the plugin's container is recreated.
 */
export async function pathPermissionCommand(action: 'revoke' | 'grant', id: string, target: string, opts: { write?: boolean; ttlMs?: number }, io: CliIo): Promise<number> {
  const r = await client().pathPermission(id, action, target, opts);
  if (action === 'grant') io.out(`${id}: ${r.hostPath} granted at ${r.containerPath} (${r.writable ? 'read-write' : 'read-only'}${opts.ttlMs ? `, for ${opts.ttlMs} ms` : ''}); plugin ${r.state}`);
  else io.out(`${id}: ${r.hostPath} (${r.name}) revoked; plugin ${r.state}`);
  return 0;
}

/**
 * `revoke <plugin> host <host:port>` and `grant <plugin> host <host:port>`: a host the
 * manifest lists, off the plugin's allow-list or back on it (the container is recreated).
 */
export async function hostPermissionCommand(action: 'revoke' | 'grant', id: string, host: string, io: CliIo): Promise<number> {
  const r = await client().hostPermission(id, action, host);
  if (action === 'grant') io.out(`${id}: ${host} granted; plugin ${r.state}`);
  else io.out(`${id}: ${host} revoked (${r.live ? 'refused from now on' : 'applies from its next start'}); plugin ${r.state}`);
  return 0;
}

/**
 * `revoke <plugin> topic <pattern>` and `grant <plugin> topic <pattern> [--ttl ms]`: a topic
 * pattern the manifest lists, taken away from the plugin at once, or given back.
 */
export async function topicPermissionCommand(action: 'revoke' | 'grant', id: string, pattern: string, ttlMs: number | undefined, io: CliIo): Promise<number> {
  await client().topicPermission(id, action, pattern, ttlMs);
  io.out(`${id}: topic ${pattern} ${action === 'revoke' ? 'revoked' : `granted${ttlMs ? ` for ${ttlMs} ms` : ''}`}`);
  return 0;
}

/** `audit [--plugin id] [--since time] [--json] [--verify]`: read the audit trail of this home, streamed. */
export async function auditCommand(opts: { plugin?: string; since?: string; json: boolean; verify: boolean }, io: CliIo): Promise<number> {
  const { auditEntries, checkAudit } = await import('../index.js');
  const file = ControlClient.forHome().home.auditFile;
  if (opts.verify) {
    const check = checkAudit(file);
    // Every break is reported, each with its file and line: a damaged line does not stop the check.
    for (const b of check.breaks) io.err(`LM_AUDIT_TAMPERED: ${b.file}:${b.line}: ${b.why === 'damaged' ? 'not an audit entry (damaged or inserted)' : 'the hash chain breaks here (a line before it was removed or edited)'}`);
    if (check.breaks.length) return 1;
    const start = check.startsAfterRemovedFiles ? ' (it begins after older files removed by rotation)' : '';
    io.out(`${file}: chain intact over ${check.lines} entries in ${check.files.length} file(s)${start}`);
    return 0;
  }
  let since: number | undefined;
  if (opts.since !== undefined) {
    since = /^\d+$/.test(opts.since) ? Number(opts.since) : Date.parse(opts.since);
    if (Number.isNaN(since)) throw new LogoMeshError('LM_USAGE', `--since needs an ISO time or ms since the epoch, found '${opts.since}'`, {});
  }
  const entries = auditEntries(file, { ...(opts.plugin ? { plugin: opts.plugin } : {}), ...(since !== undefined ? { since } : {}) });
  // One line each (JSON Lines with --json): the trail is printed as it is read, never held whole.
  for (const e of entries) {
    if (opts.json) io.out(JSON.stringify(e));
    else io.out(`${new Date(e.time).toISOString()}  ${e.who.padEnd(12)} ${e.action.padEnd(9)} ${e.resource}  ${e.result}${e.code ? ` ${e.code}` : ''}${e.count ? ` x${e.count}` : ''}${e.reason ? ` (${e.reason})` : ''}`);
  }
  return 0;
}
