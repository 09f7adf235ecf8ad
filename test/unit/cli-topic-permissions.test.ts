import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { serveControl } from '../../src/control/server.js';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { silentLogger } from '../../src/log.js';

/**
 * `logomesh revoke|grant <plugin> topic <pattern>`: the CLI, through a real control socket,
 * to a real controller (its engine answers pings only: the plugins are loaded, not
 * started), whose revocations are saved in state.json and restored by the next one.
 */
const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-cli-topic-')));
const engineSock = path.join(dir, 'docker.sock');
const pluginsDir = path.join(dir, 'plugins');
const home = resolveHome({ LOGOMESH_HOME: path.join(dir, 'home'), LOGOMESH_INSTANCE: 'cli-topic-test' });
let engine: Server;
const before = process.env.LOGOMESH_HOME;

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const io: CliIo = { out: (l) => lines.push(l), err: (l) => errors.push(l), stdout: process.stdout, stderr: process.stderr };
  const code = await main(args, io);
  return { code, out: lines.join('\n'), err: errors.join('\n') };
}

async function controller(): Promise<{ host: Controller; close: () => Promise<void> }> {
  mkdirSync(home.dir, { recursive: true });
  const host = await Controller.create({ log: silentLogger, home, docker: new Docker({ socketPath: engineSock }), engineCheckMs: 60_000, kernelLog: false });
  host.loadDirectory(pluginsDir);
  const server = await serveControl(host, home.controlSocket, silentLogger, () => {});
  return {
    host,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await host.close();
    },
  };
}

beforeAll(async () => {
  engine = createServer((req, res) => (req.url?.endsWith('/_ping') ? res.writeHead(200).end('OK') : res.writeHead(404).end()));
  await new Promise<void>((r) => engine.listen(engineSock, () => r()));
  for (const [id, coordination] of [
    ['reader', 'coordination:\n  subscribes: [news.flash, weather.*]\n'],
    ['news', 'coordination:\n  messaging: true\n  publishes: [news.flash]\n'],
  ] as const) {
    mkdirSync(path.join(pluginsDir, id), { recursive: true });
    writeFileSync(path.join(pluginsDir, id, 'main.mjs'), '\n');
    writeFileSync(path.join(pluginsDir, id, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\n${coordination}`);
  }
  process.env.LOGOMESH_HOME = home.dir;
});
afterAll(async () => {
  await new Promise<void>((r) => engine.close(() => r()));
  if (before === undefined) delete process.env.LOGOMESH_HOME;
  else process.env.LOGOMESH_HOME = before;
  rmSync(dir, { recursive: true, force: true });
});

describe('logomesh revoke|grant <plugin> topic: usage', () => {
  it.each([
    [['revoke', 'reader', 'topic'], 'revoke <plugin> topic needs one topic pattern as the manifest lists it'],
    [['grant', 'reader', 'topic', 'a', 'b'], 'grant <plugin> topic needs one topic pattern'],
    [['revoke', 'reader', 'topic', 'news.*.flash'], "'news.*.flash' is not a topic pattern as a manifest lists it"],
    [['revoke', 'reader', 'topic', 'news flash'], 'is not a topic pattern'],
    [['revoke', 'reader', 'topic', 'news.flash', '--ttl', '1000'], '--ttl applies to grant only'],
    [['grant', 'reader', 'topic', 'news.flash', '--ttl', '0'], '--ttl must be a positive number'],
    [['grant', 'reader', 'topic', 'news.flash', '--write'], '--read and --write apply to path grants only'],
  ])('%j is a usage error', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^LM_USAGE: /);
    expect(r.err).toContain(message);
  });
});

describe('logomesh revoke|grant <plugin> topic: through the control socket, across a controller restart', () => {
  it('revokes a declared pattern, refuses one the manifest does not list naming the fields, and the next controller restores it', async () => {
    const first = await controller();
    try {
      expect(await run(['revoke', 'reader', 'topic', 'news.flash'])).toEqual({ code: 0, out: 'reader: topic news.flash revoked', err: '' });
      expect(first.host.grants.isTopicRevoked('reader', 'news.flash')).toBe(true);
      const refused = await run(['revoke', 'reader', 'topic', 'news.*']);
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/^LM_PERMISSION_DENIED: plugin reader does not list 'news\.\*' under coordination\.publishes or coordination\.subscribes/);
      const unknown = await run(['grant', 'nobody', 'topic', 'news.flash']);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toMatch(/^LM_PLUGIN_NOT_FOUND: /);
      expect(await run(['grant', 'news', 'topic', 'news.flash', '--ttl', '600000'])).toEqual({ code: 0, out: 'news: topic news.flash granted for 600000 ms', err: '' });
      const saved = JSON.parse(readFileSync(home.stateFile, 'utf8')) as { plugins: Record<string, { permissions?: unknown }> };
      expect(saved.plugins.reader?.permissions).toEqual({ revokedTopics: ['news.flash'] });
      expect(saved.plugins.news?.permissions).toEqual({ topicGrants: [{ topic: 'news.flash', expiresAt: expect.any(Number) }] });
    } finally {
      await first.close();
    }
    const second = await controller();
    try {
      expect(second.host.grants.isTopicRevoked('reader', 'news.flash')).toBe(true);
      expect(second.host.grants.isTopicRevoked('reader', 'weather.*')).toBe(false);
      expect(await run(['grant', 'reader', 'topic', 'news.flash'])).toEqual({ code: 0, out: 'reader: topic news.flash granted', err: '' });
      expect(second.host.grants.isTopicRevoked('reader', 'news.flash')).toBe(false);
    } finally {
      await second.close();
    }
    const trail = readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}${e.code ? ` ${e.code}` : ''}`);
    expect(trail.filter((l) => l.includes(':topic:'))).toEqual([
      'operator revoke reader:topic:news.flash revoked',
      'operator revoke reader:topic:news.* denied LM_PERMISSION_DENIED',
      'operator grant news:topic:news.flash granted',
      // Restored at load, in load order (news, then reader).
      'controller grant news:topic:news.flash granted',
      'controller revoke reader:topic:news.flash revoked',
      'operator grant reader:topic:news.flash granted',
    ]);
  });
});
