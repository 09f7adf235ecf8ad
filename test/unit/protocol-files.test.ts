import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import * as hub from '../../src/hub/protocol.js';

/**
 * images/protocol/: the one source of the protocol's constants, and the conformance
 * transcript every SDK's tests replay. The SDKs check their constants against the file in
 * their own tests; this checks the files themselves, without an engine.
 */
const read = (name: string): unknown => JSON.parse(readFileSync(fileURLToPath(new URL(`../../images/protocol/${name}`, import.meta.url)), 'utf8'));

interface Constants {
  protocol: number;
  messageTypes: { toHub: string[]; fromHub: string[] };
  maxDepth: number;
  messageBytes: { default: number; max: number; hardLimitFactor: number };
  callTimeoutMs: { default: number; max: number };
  idMaxLength: number;
  errorCodes: Record<string, string>;
}

type Step = { note?: string; send?: unknown; expect?: unknown; ping?: string; expectClose?: number };

/** Every `$name` string in a frame. */
function names(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string' && v.startsWith('$')) out.push(v.slice(1));
  else if (Array.isArray(v)) v.forEach((x) => names(x, out));
  else if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    // A generator ({"$nested": n}) is no name.
    if (!(entries.length === 1 && entries[0]![0].startsWith('$'))) entries.forEach(([, x]) => names(x, out));
  }
  return out;
}

describe('images/protocol/protocol.json', () => {
  const c = read('protocol.json') as Constants;

  it('names only error codes that src/errors.ts defines (and so docs/errors.md documents)', () => {
    for (const code of Object.keys(c.errorCodes)) expect(Object.keys(ERROR_CODES), code).toContain(code);
    for (const by of Object.values(c.errorCodes)) expect(['hub', 'sdk', 'hub, sdk']).toContain(by);
  });

  it('holds limits that fit together', () => {
    expect(c.protocol).toBe(1);
    expect(c.maxDepth).toBe(64);
    expect(c.messageBytes.default).toBeLessThanOrEqual(c.messageBytes.max);
    expect(c.callTimeoutMs.default).toBeLessThanOrEqual(c.callTimeoutMs.max);
    expect(c.messageTypes.toHub).toContain('hello');
    expect(c.messageTypes.fromHub).toContain('shutdown');
  });

  it('is what the hub itself uses', () => {
    expect({ protocol: hub.PROTOCOL_VERSION, maxDepth: hub.MAX_DEPTH, byDefault: hub.DEFAULT_MAX_MESSAGE_BYTES, max: hub.MAX_MAX_MESSAGE_BYTES, factor: hub.HARD_LIMIT_FACTOR, timeout: hub.DEFAULT_CALL_TIMEOUT_MS, maxTimeout: hub.MAX_CALL_TIMEOUT_MS }).toEqual({
      protocol: c.protocol,
      maxDepth: c.maxDepth,
      byDefault: c.messageBytes.default,
      max: c.messageBytes.max,
      factor: c.messageBytes.hardLimitFactor,
      timeout: c.callTimeoutMs.default,
      maxTimeout: c.callTimeoutMs.max,
    });
  });
});

describe('images/protocol/transcript.json', () => {
  const t = read('transcript.json') as { plugin: string; steps: Step[] };
  const c = read('protocol.json') as Constants;

  it('has steps of the four kinds only, and uses each $name only after the plugin sent it', () => {
    const bound = new Set<string>();
    for (const [i, step] of t.steps.entries()) {
      const kinds = ['send', 'expect', 'ping', 'expectClose'].filter((k) => k in step);
      expect(kinds, `step ${i + 1}`).toHaveLength(1);
      if (step.expect !== undefined) names(step.expect).forEach((n) => bound.add(n));
      if (step.send !== undefined) for (const n of names(step.send)) expect(bound.has(n), `step ${i + 1} uses $${n}`).toBe(true);
    }
  });

  it('covers hello, call, response, error, event, broadcast, ping and shutdown, and ends with a close', () => {
    const sent = t.steps.flatMap((s) => (s.send ? [(s.send as { type: string }).type] : []));
    const expected = t.steps.flatMap((s) => (s.expect ? [(s.expect as { type: string }).type] : []));
    for (const type of ['response', 'request', 'error', 'event', 'broadcast', 'shutdown']) expect(sent).toContain(type);
    for (const type of ['hello', 'subscribe', 'response', 'request', 'event']) expect(expected).toContain(type);
    for (const type of [...sent]) expect(c.messageTypes.fromHub).toContain(type);
    for (const type of [...expected]) expect(c.messageTypes.toHub).toContain(type);
    expect(t.steps.some((s) => s.ping !== undefined)).toBe(true);
    expect(t.steps.at(-1)).toEqual({ expectClose: 1000 });
  });

  it("subscribes the plugin's pattern in hello, in a hello the hub accepts, and has a subscribe only for one added while serving", () => {
    const hello = t.steps[0]!.expect as { type: string; subscriptions?: string[] };
    expect(hello.type).toBe('hello');
    expect(hello.subscriptions).toEqual(['conf.*']);
    // As the plugin would send it, its $names filled in: the hub's own parser takes it.
    const sent = JSON.stringify(hello).replace(/"\$\w+"/g, '"x"');
    const parsed = hub.parseFrame(sent, false, c.messageBytes.default);
    expect(parsed.ok && parsed.msg).toMatchObject({ type: 'hello', subscriptions: ['conf.*'] });
    // The first subscribe comes after the request that registers its pattern (listen), never
    // right after hello.
    const subscribeAt = t.steps.findIndex((s) => (s.expect as { type?: string } | undefined)?.type === 'subscribe');
    const listenAt = t.steps.findIndex((s) => (s.send as { method?: string } | undefined)?.method === 'listen');
    expect(listenAt).toBeGreaterThan(1);
    expect(subscribeAt).toBe(listenAt + 1);
    expect((t.steps[subscribeAt]!.expect as { topic: string }).topic).toBe((t.steps[listenAt]!.send as { data: { topic: string } }).data.topic);
  });

  it('probes the depth limit on both sides of MAX_DEPTH, and the 10 KB frame nested 5000 deep', () => {
    const nestings = JSON.stringify(t.steps).match(/"\$nested":\d+/g) ?? [];
    expect(nestings).toEqual(expect.arrayContaining([`"$nested":${c.maxDepth - 1}`, `"$nested":${c.maxDepth}`, '"$nested":5000']));
  });
});
