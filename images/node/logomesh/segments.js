// Shared-memory segments (docs/shared-memory.md). Node.js cannot map a file into its
// memory, so a segment is read and written through its file descriptor: exactly one copy
// each way (pread into a Buffer, pwrite from one), between the shared pages and the
// plugin's own memory. The kernel decides what this plugin may open (the file's ACL).
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { frameStructured, unframeStructured } from './bridge.js';
import { frameMessage, unframeMessage } from './protobuf-types.js';
import { exchange } from './writes.js';
import { LogoMeshError } from './errors.js';
import { nextId } from './state.js';

const KEY = '$segment';
const OP_TIMEOUT_MS = 30_000;

// Read once: every request and answer asks (packSegments, unpackSegments), and a read of
// process.env is a call into the runtime (about 1.5% of a plugin's CPU at 64 calls in flight).
let dir;
export const segmentsDir = () => (dir ??= process.env.LOGOMESH_SEGMENTS_DIR ?? '');

/** A segment handle: read, write, slice, close; its owner also resize, setReadOnly, share, publish, free. */
export class Segment {
  #s;
  #fd;
  #writable = false;

  constructor(s, handle) {
    this.#s = s;
    this.#set(handle);
  }

  #set(h) {
    this.id = h.id;
    this.owner = h.owner;
    this.size = h.size;
    this.readOnly = h.readOnly === true;
    this.path = h.path;
  }

  handle() {
    return { id: this.id, owner: this.owner, size: this.size, readOnly: this.readOnly, path: this.path };
  }

  toJSON() {
    return { [KEY]: this.handle() };
  }

  /** This segment sent with access ('read' or 'write') for its receiver: its owner only. */
  grant(access = 'read') {
    if (access !== 'read' && access !== 'write') throw new TypeError("access must be 'read' or 'write'");
    return new Granted(this, access);
  }

  #open(write) {
    if (this.#fd !== undefined && (this.#writable || !write)) return this.#fd;
    this.close();
    const dir = segmentsDir();
    if (!dir) throw new LogoMeshError('LM_SEGMENT', 'this plugin has no shared-memory pool (set coordination.sharedMemory: true)');
    try {
      this.#fd = openSync(path.join(dir, this.path), write ? 'r+' : 'r');
    } catch (err) {
      if (err.code === 'EACCES') throw new LogoMeshError('LM_PERMISSION_DENIED', `the kernel refused to open segment ${this.id} for ${write ? 'writing' : 'reading'}: this plugin was not given that access`);
      throw new LogoMeshError('LM_SEGMENT', `segment ${this.id} cannot be opened: ${err.message}`);
    }
    this.#writable = write;
    return this.#fd;
  }

  /** A copy of `length` bytes from `offset` (default: to the end), in a new Buffer: the one copy. */
  read(offset = 0, length = this.size - offset) {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new LogoMeshError('LM_INVALID_ARGUMENT', `reading ${length} bytes at ${offset} passes the segment's ${this.size} bytes`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) done += readSync(this.#open(false), out, done, length - done, offset + done) || length;
    return out;
  }

  /** Bytes [start, end) as a Buffer (a copy: Node.js cannot map the segment). */
  slice(start = 0, end = this.size) {
    return this.read(start, end - start);
  }

  /** Copy data (a Buffer or Uint8Array) into the segment at offset; returns the bytes written. */
  write(data, offset = 0) {
    const bytes = data instanceof Uint8Array ? data : Buffer.from(data);
    if (offset < 0 || offset + bytes.length > this.size) throw new LogoMeshError('LM_INVALID_ARGUMENT', `writing ${bytes.length} bytes at ${offset} passes the segment's ${this.size} bytes`);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.#open(true), bytes, done, bytes.length - done, offset + done);
    return done;
  }

  /** Close its file (the segment lives on until its owner frees it). */
  close() {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** `message`: { type, types } for a declared protobuf message type (docs/data-bridge.md). */
  writeStructured(value, format = 'json', message) {
    const bytes = message ? frameMessage(message, value, format) : frameStructured(value, format);
    if (bytes.length > this.size) throw new LogoMeshError('LM_INVALID_ARGUMENT', `the data takes ${bytes.length} bytes in ${format}; the segment has ${this.size}`);
    return this.write(bytes);
  }

  readStructured(format, message) {
    return message ? unframeMessage(this.read(), message, format) : unframeStructured(this.read(), format).value;
  }

  async #op(op, fields = {}) {
    this.close();
    this.#set(await segmentOp(this.#s, op, { segment: this.id, ...fields }));
  }

  resize(size) {
    return this.#op('resize', { size });
  }

  setReadOnly() {
    return this.#op('readonly');
  }

  share(plugins, access = 'read') {
    return this.#op('share', { plugins, access });
  }

  publish(key, ttlMs) {
    return this.#op('publish', { key, ttlMs });
  }

  async release() {
    this.close();
    await segmentOp(this.#s, 'release', { segment: this.id });
  }

  async free() {
    this.close();
    await segmentOp(this.#s, 'free', { segment: this.id });
  }
}

class Granted {
  constructor(segment, access) {
    this.segment = segment;
    this.access = access;
  }

  toJSON() {
    return this.segment.toJSON();
  }
}

/** Ask the pool; resolves with its answer's data. */
export function segmentOp(s, op, fields) {
  return exchange(s, { type: 'segment', id: nextId(s), op, ...fields }, OP_TIMEOUT_MS, () => `no answer to segment ${op}`);
}

/** No segment refs: shared, frozen (every call and answer of a plugin without a pool gets it). */
const NO_REFS = Object.freeze([]);

/** [data with every Segment as its handle, the segment refs the message carries]. */
export function packSegments(value) {
  if (!segmentsDir()) return [value, NO_REFS];
  const refs = new Map();
  const walk = (v) => {
    if (v instanceof Segment || v instanceof Granted) {
      const seg = v instanceof Segment ? v : v.segment;
      const ref = refs.get(seg.id) ?? { id: seg.id };
      if (v instanceof Granted && ref.grant !== 'write') ref.grant = v.access;
      refs.set(seg.id, ref);
      return seg.toJSON();
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const out = walk(value);
  return [out, [...refs.values()]];
}

/** data with every segment handle turned into a Segment. */
export function unpackSegments(s, value) {
  if (!segmentsDir()) return value;
  const walk = (v) => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const h = v[KEY];
      if (Object.keys(v).length === 1 && h && typeof h.id === 'string' && typeof h.path === 'string') return new Segment(s, h);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value);
}
