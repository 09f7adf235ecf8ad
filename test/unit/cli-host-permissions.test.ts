import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';
import { serveControl } from '../../src/control/server.js';
import { LogoMeshError } from '../../src/errors.js';
import type { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';

function io(): CliIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), stdout: process.stdout, stderr: process.stderr };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = io();
  const code = await main(args, o);
  return { code, out: o.lines.join('\n'), err: o.errors.join('\n') };
}

describe('logomesh revoke|grant <plugin> host: usage', () => {
  it.each([
    [['revoke', 'fetcher', 'host'], 'revoke <plugin> host needs one host as the manifest lists it'],
    [['grant', 'fetcher', 'host', 'a.example.com:443', 'b.example.com:443'], 'grant <plugin> host needs one host'],
    [['revoke', 'fetcher', 'host', 'https://api.example.com/'], "'https://api.example.com/' is not a host as a manifest lists it"],
    [['grant', 'fetcher', 'host', 'api.example.com:443', '--ttl', '1000'], '--read, --write and --ttl do not apply to hosts'],
    [['revoke', 'fetcher', 'host', 'api.example.com:443', '--write'], '--read, --write and --ttl do not apply to hosts'],
  ])('%j is a usage error', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^LM_USAGE: /);
    expect(r.err).toContain(message);
  });
});

/** The CLI through a real control socket, to a controller that only records what it is asked. */
describe('logomesh revoke|grant <plugin> host: through the control socket', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'logomesh-cli-host-'));
  const asked: string[] = [];
  let server: Server;
  const before = process.env.LOGOMESH_HOME;
  const fake = {
    revokeHost: (id: string, host: string) => {
      asked.push(`revoke ${id} ${host}`);
      if (host === 'nope.example.com:443') {
        return Promise.reject(new LogoMeshError('LM_PERMISSION_DENIED', `plugin ${id} does not list '${host}' under the hosts of a network capability`, {}));
      }
      return Promise.resolve(true);
    },
    grantHost: (id: string, host: string) => {
      asked.push(`grant ${id} ${host}`);
      return Promise.resolve();
    },
    status: () => ({ state: 'ready' }),
  };

  beforeAll(async () => {
    process.env.LOGOMESH_HOME = home;
    server = await serveControl(fake as unknown as Controller, path.join(home, 'control.sock'), silentLogger, () => {});
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    if (before === undefined) delete process.env.LOGOMESH_HOME;
    else process.env.LOGOMESH_HOME = before;
    rmSync(home, { recursive: true, force: true });
  });

  it('revokes and grants a host, and reports a refusal with its code', async () => {
    expect(await run(['revoke', 'fetcher', 'host', 'api.example.com:443'])).toEqual({ code: 0, out: 'fetcher: api.example.com:443 revoked (refused from now on); plugin ready', err: '' });
    expect(await run(['grant', 'fetcher', 'host', 'api.example.com:443'])).toEqual({ code: 0, out: 'fetcher: api.example.com:443 granted; plugin ready', err: '' });
    const refused = await run(['revoke', 'fetcher', 'host', 'nope.example.com:443']);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^LM_PERMISSION_DENIED: plugin fetcher does not list 'nope.example.com:443'/);
    expect(asked).toEqual(['revoke fetcher api.example.com:443', 'grant fetcher api.example.com:443', 'revoke fetcher nope.example.com:443']);
  });
});
