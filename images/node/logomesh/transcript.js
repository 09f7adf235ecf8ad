// The protocol's recorded conformance session (images/protocol/ of LogoMesh, in the runtime
// image at /opt/logomesh/protocol): loading it, and replaying it as the hub on one
// connection. FakeHub.start({ transcript }) uses it; images/protocol/README.md describes
// the format.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Where protocol.json and transcript.json are (LOGOMESH_PROTOCOL_DIR overrides it). */
export const PROTOCOL_DIR = process.env.LOGOMESH_PROTOCOL_DIR ?? '/opt/logomesh/protocol';

/** The plugin did not do what the transcript expects at some step. */
export class Mismatch extends Error {
  name = 'Mismatch';
}

/** A file of the protocol folder, parsed: 'transcript.json' (the default) or 'protocol.json'. */
export function loadProtocolFile(name = 'transcript.json') {
  return JSON.parse(readFileSync(path.join(PROTOCOL_DIR, name), 'utf8'));
}

/** The JSON text a generator object ({"$nested": n}, {"$string": n}) stands for, or undefined. */
function generated(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1 || !Number.isInteger(v[keys[0]])) return undefined;
  const n = v[keys[0]];
  if (keys[0] === '$nested') return '['.repeat(n) + ']'.repeat(n);
  if (keys[0] === '$string') return JSON.stringify('x'.repeat(n));
  return undefined;
}

/** A frame to send as text: $names replaced by what they were bound to, generators by their text. */
export function render(frame, bound) {
  const texts = [];
  const walk = (v) => {
    const text = generated(v);
    if (text !== undefined) {
      texts.push(text);
      return `@@lm-generated-${texts.length - 1}@@`;
    }
    if (typeof v === 'string' && v.startsWith('$')) {
      if (!(v.slice(1) in bound)) throw new Mismatch(`${v} is used before the plugin sent it`);
      return bound[v.slice(1)];
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  let out = JSON.stringify(walk(frame));
  texts.forEach((text, i) => (out = out.replace(`"@@lm-generated-${i}@@"`, () => text)));
  return out;
}

function nested(actual, n) {
  for (let level = 1; level <= n; level++) {
    if (!Array.isArray(actual)) return false;
    if (level === n) return actual.length === 0;
    if (actual.length !== 1) return false;
    actual = actual[0];
  }
  return false;
}

const show = (v) => (JSON.stringify(v) ?? String(v)).slice(0, 200);

/** Why actual does not match expected (undefined when it does); binds $names. */
export function match(expected, actual, bound, where = 'the frame') {
  if (typeof expected === 'string' && expected.startsWith('$')) {
    const name = expected.slice(1);
    if (!(name in bound)) {
      bound[name] = actual;
      return undefined;
    }
    return JSON.stringify(bound[name]) === JSON.stringify(actual) ? undefined : `${where}: expected ${show(bound[name])} (as ${expected}), found ${show(actual)}`;
  }
  if (generated(expected) !== undefined) {
    const [key, n] = Object.entries(expected)[0];
    const ok = key === '$nested' ? nested(actual, n) : actual === 'x'.repeat(n);
    return ok ? undefined : `${where}: expected ${key} ${n}, found ${show(actual)}`;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return `${where}: expected ${show(expected)}, found ${show(actual)}`;
    for (let i = 0; i < expected.length; i++) {
      const problem = match(expected[i], actual[i], bound, `${where}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return `${where}: expected an object, found ${show(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      if (!(k in actual)) return `${where}: '${k}' is missing`;
      const problem = match(v, actual[k], bound, where === 'the frame' ? k : `${where}.${k}`);
      if (problem) return problem;
    }
    return undefined;
  }
  return expected === actual ? undefined : `${where}: expected ${show(expected)}, found ${show(actual)}`;
}

/**
 * Play the hub's side of a transcript on one connection. `peer` is what the fake hub
 * offers: send(text), next(timeoutMs) -> text (rejects when none comes or the connection
 * closes), ping(text, timeoutMs) -> the pong's payload, closed(timeoutMs) -> close code.
 * Resolves with what the $names were bound to; rejects with a Mismatch at the first step
 * the plugin does not follow.
 */
export async function replay(peer, transcript, { timeoutMs = 10_000 } = {}) {
  const bound = {};
  let last = '(none)';
  for (const [i, step] of transcript.steps.entries()) {
    const where = `step ${i + 1}${step.note ? ` (${step.note})` : ''}`;
    try {
      if ('send' in step) {
        peer.send(render(step.send, bound));
      } else if ('expect' in step) {
        last = await peer.next(timeoutMs);
        const problem = match(step.expect, JSON.parse(last), bound);
        if (problem) throw new Mismatch(problem);
      } else if ('ping' in step) {
        const payload = await peer.ping(step.ping, timeoutMs);
        if (payload !== step.ping) throw new Mismatch(`the pong carried ${show(payload)}, not ${show(step.ping)}`);
      } else if ('expectClose' in step) {
        const code = await peer.closed(timeoutMs);
        if (code !== step.expectClose) throw new Mismatch(`closed with ${code}, expected ${step.expectClose}`);
      } else {
        throw new Mismatch(`unknown step ${show(step)}`);
      }
    } catch (err) {
      throw new Mismatch(`${where}: ${err instanceof Error ? err.message : String(err)}; last frame from the plugin: ${last.slice(0, 300)}`);
    }
  }
  return bound;
}
