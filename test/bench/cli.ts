import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Controller } from '../../src/controller/controller.js';
import { openEndpoints } from '../../src/control/endpoints.js';
import type { Logger } from '../../src/log.js';
import { pct, type Row } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The installed command: what `logomesh` on PATH runs (npm links it to this file). */
const BIN = path.join(REPO, 'bin', 'logomesh.js');

/**
 * Run a command to its end and time it. Asynchronously: the controller the command talks to
 * lives in this process, and a synchronous spawn would block the event loop that answers it.
 */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    // A bound on a command that hangs: the benchmark fails instead of waiting for ever.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr}`));
      else resolve(ms);
    });
  });
}

/**
 * `logomesh ps` and `logomesh call` as users run them (the installed command), against a
 * running controller's control socket, beside a bare `node -e 0` (the floor of any command
 * written in Node.js).
 */
export async function cliBench(host: Controller, log: Logger, plugin: string, method: string, rounds: number): Promise<Row[]> {
  const endpoints = await openEndpoints(host, log, () => undefined);
  try {
    const env = { ...process.env, LOGOMESH_HOME: host.home.dir, LOGOMESH_POLICY: '' };
    const ps: number[] = [];
    const call: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < Math.max(rounds, 5); i++) {
      ps.push(await timed(process.execPath, [BIN, 'ps'], env));
      call.push(await timed(process.execPath, [BIN, 'call', `${plugin}.${method}`, '{"text":"hello world"}'], env));
      bare.push(await timed(process.execPath, ['-e', '0'], env));
    }
    const target = '<= 150 ms';
    return [
      { section: 'cli', name: '`logomesh ps`, the installed command', subject: '', baseline: '`node -e 0`', value: pct(ps, 50), baselineValue: pct(bare, 50), unit: 'ms', target, met: pct(ps, 50) <= 150 },
      { section: 'cli', name: `\`logomesh call ${plugin}.${method}\`, the installed command`, subject: '', baseline: '`node -e 0`', value: pct(call, 50), baselineValue: pct(bare, 50), unit: 'ms', target, met: pct(call, 50) <= 150 },
    ];
  } finally {
    await endpoints.close();
  }
}
