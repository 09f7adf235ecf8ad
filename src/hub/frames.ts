import { decode as unpack, encode as pack } from '@msgpack/msgpack';

/**
 * Binary frames (the spec's useBinaryFormat): the same message objects as msgpack, for a
 * plugin whose hello lists `msgpack` under `encodings` (docs/protocol.md). Text JSON stays for
 * every other peer and for host clients. The decoder is iterative (no recursion however deep
 * a frame nests), and a decoded frame is checked before anything walks it recursively.
 */

/** The encodings this hub speaks, in its order of preference. */
export const ENCODINGS = ['msgpack', 'json'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** The encoding of a peer whose hello listed `offered` (JSON when it listed none the hub speaks). */
export function chooseEncoding(offered: readonly string[] | undefined): Encoding {
  return offered?.includes('msgpack') ? 'msgpack' : 'json';
}

export type Unpacked = { ok: true; value: unknown } | { ok: false; message: string };

/**
 * A binary frame's value, or why it is refused: not msgpack, nested deeper than `maxDepth`
 * (the frame itself is level 1), or holding what JSON peers could not receive (binary data,
 * extension types such as timestamps, integers past 2^53, maps with other than string keys).
 */
export function unpackFrame(buf: Uint8Array, maxDepth: number): Unpacked {
  let value: unknown;
  try {
    value = unpack(buf, { maxStrLength: buf.length, maxBinLength: 0, maxExtLength: 0 });
  } catch (err) {
    return { ok: false, message: `binary frame is not msgpack this hub accepts: ${String((err as Error)?.message ?? err).slice(0, 200)}` };
  }
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v))) return { ok: false, message: 'binary frame holds an integer past 2^53, which JSON peers cannot receive exactly' };
      continue;
    }
    if (d > maxDepth) return { ok: false, message: `frame nests arrays and objects more than ${maxDepth} levels deep` };
    if (!Array.isArray(v) && Object.getPrototypeOf(v) !== Object.prototype) return { ok: false, message: 'binary frame holds binary data or an extension type; send binary data in a shared-memory segment' };
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return { ok: true, value };
}

/** A message as a binary frame. */
export function packFrame(msg: unknown): Uint8Array {
  return pack(msg, { ignoreUndefined: true });
}
