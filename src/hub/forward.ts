import { encode, type Encoded } from './codec.js';
import type { Request, Response } from './protocol.js';

/**
 * The frames of a call the hub forwards and of its answer. Their envelope is the hub's own
 * (its ids, `from`, the timeout, the time); their `data` is what the sender wrote. When the
 * frame it came in had that data as text the hub could take as it is (protocol.ts,
 * frame-scan.ts), the text goes on unchanged around the new envelope: parsed once to check
 * the frame, never serialized again. Otherwise (a schema checked the value, a msgpack or
 * in-process sender) the message is serialized whole, as before.
 *
 * The envelope's strings are JSON-quoted like any other: ids and method names are checked
 * printable ASCII, but an id may hold a quote or a backslash.
 */

const q = JSON.stringify;

/**
 * The part of a forwarded request between its id and its data, the same for every call from
 * one caller to one target's method: kept with the caller's tally of them (peer-tally.ts), so
 * a call quotes and joins only its id, data and numbers.
 */
export function requestHead(from: string, to: string, method: string): string {
  return `,"from":${q(from)},"to":[${q(to)}],"method":${q(method)},"data":`;
}

/** The part of a forwarded answer between its id and its correlation id, the same for every answer of one target. */
export function responseHead(from: string): string {
  return `,"from":${q(from)},"correlationId":`;
}

/** A request on its way to its target; `raw` from the caller's frame; `head` its requestHead, when kept. */
export function encodeRequest(out: Request, raw: string | undefined, maxBytes: number, head?: string): Encoded {
  if (raw === undefined) return encode(out, maxBytes);
  const segments = out.segments ? `,"segments":${q(out.segments)}` : '';
  const text = `{"type":"request","id":${q(out.id)}${head ?? requestHead(out.from!, out.to[0]!, out.method)}${raw},"timeout":${out.timeout},"timestamp":${out.timestamp}${segments}}`;
  return sized(text, maxBytes);
}

/** A successful answer on its way back to the caller; `raw` from the target's frame; `head` its responseHead, when kept. */
export function encodeResponse(reply: Response, raw: string | undefined, maxBytes: number, head?: string): Encoded {
  if (raw === undefined || !reply.success) return encode(reply, maxBytes);
  const segments = reply.segments ? `,"segments":${q(reply.segments)}` : '';
  const text = `{"type":"response","id":${q(reply.id)}${head ?? responseHead(reply.from!)}${q(reply.correlationId)},"timestamp":${reply.timestamp},"success":true,"data":${raw}${segments}}`;
  return sized(text, maxBytes);
}

function sized(text: string, maxBytes: number): Encoded {
  // A string's bytes are at most 3x its UTF-16 length: counted only when that could matter.
  const bytes = text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text);
  if (bytes > maxBytes) return { ok: false, code: 'LM_MESSAGE_TOO_LARGE', message: `the message is ${bytes} bytes, over the maximum of ${maxBytes}` };
  return { ok: true, text, bytes };
}
