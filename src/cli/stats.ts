import os from 'node:os';
import { ControlClient, LogoMeshError } from '../control/client.js';
import { statsJson, statsTable, type LimitChange } from '../index.js';
import type { CliIo } from './io.js';

/** How often `logomesh stats` redraws, as `docker stats` does. */
const REFRESH_MS = 1000;

/**
 * `logomesh stats [--json] [--no-stream]`: every running plugin's usage, like `docker
 * stats`, redrawn every second until Ctrl-C (on a terminal, in place); once with
 * --no-stream. --json prints each plugin's ResourceUsage (a JSON array per refresh).
 */
export async function statsCommand(opts: { json: boolean; stream: boolean }, io: CliIo, signal?: AbortSignal): Promise<number> {
  const client = ControlClient.forHome();
  const tty = io.stdout.isTTY === true && !opts.json;
  let stop = false;
  const onSignal = () => (stop = true);
  process.once('SIGINT', onSignal);
  signal?.addEventListener('abort', onSignal);
  try {
    for (;;) {
      const rows = await client.stats();
      const text = opts.json ? statsJson(rows) : statsTable(rows);
      io.out(tty && opts.stream ? `\x1b[2J\x1b[H${text}` : text);
      if (!opts.stream) return 0;
      const until = Date.now() + REFRESH_MS;
      while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      if (stop) return 0;
      if (!tty && !opts.json) io.out('');
    }
  } finally {
    process.off('SIGINT', onSignal);
  }
}

const KEYS: Readonly<Record<string, keyof LimitChange>> = { memory: 'memoryMB', cpu: 'cpuPercent', pids: 'processes' };
const UNITS: Readonly<Record<string, number>> = { '': 1, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024 };

/**
 * Parse `memory=<MB>[m|g] cpu=<percent>[%] pids=<n>` into a LimitChange. Throws LM_USAGE
 * naming the argument. Bounds are checked by the controller (LM_LIMIT_INVALID).
 */
export function parseLimits(args: readonly string[]): LimitChange {
  const change: Record<string, number> = {};
  for (const arg of args) {
    const m = /^([a-z]+)=(.+)$/.exec(arg);
    const key = m ? KEYS[m[1]!] : undefined;
    if (!m || !key) throw new LogoMeshError('LM_USAGE', `'${arg}' is not a limit: expected memory=<MB>, cpu=<percent> or pids=<count>, such as memory=128 cpu=50 pids=64`, { found: arg });
    const value = m[2]!.trim().toLowerCase();
    let n: number;
    if (key === 'memoryMB') {
      const u = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(value);
      const scale = u ? UNITS[u[2]!] : undefined;
      if (!u || scale === undefined) throw new LogoMeshError('LM_USAGE', `memory=${m[2]}: expected megabytes, such as memory=128, memory=128m or memory=1g`, { found: m[2] });
      n = Number(u[1]) * scale;
    } else {
      n = Number(key === 'cpuPercent' ? value.replace(/%$/, '') : value);
    }
    if (!Number.isInteger(n)) throw new LogoMeshError('LM_USAGE', `${m[1]}=${m[2]}: expected a whole number`, { found: m[2] });
    if (change[key] !== undefined) throw new LogoMeshError('LM_USAGE', `${m[1]} is given twice`, { found: arg });
    change[key] = n;
  }
  if (Object.keys(change).length === 0) throw new LogoMeshError('LM_USAGE', 'limit needs at least one of memory=<MB>, cpu=<percent>, pids=<count>', {});
  return change as LimitChange;
}

/** `logomesh limit <plugin> memory=... cpu=... pids=...`: change a running plugin's limits live, audited with who ran it. */
export async function limitCommand(id: string, args: readonly string[], io: CliIo): Promise<number> {
  const change = parseLimits(args);
  const user = os.userInfo();
  const by = `${process.env.SUDO_USER ? `${process.env.SUDO_USER} via sudo as ` : ''}${user.username} (uid ${user.uid}), logomesh limit`;
  const { changed } = await ControlClient.forHome().limits(id, change, by);
  if (changed.length === 0) io.out(`${id}: limits unchanged`);
  for (const c of changed) io.out(`${id}: ${c.resource} ${c.from ?? 'unlimited'} -> ${c.to} (live, no restart)`);
  return 0;
}
