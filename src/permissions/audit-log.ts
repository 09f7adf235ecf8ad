import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';

/** One permission decision or security event. */
export interface AuditEntry {
  /** ms since the epoch. */
  readonly time: number;
  /** Who acted: a plugin id, `host`, or `operator`. */
  readonly who: string;
  /** What was attempted: `call`, `event`, `broadcast`, `hello`, `grant`, `revoke`, `violation`, `start`, `stop`. */
  readonly action: string;
  /** What it was attempted on: `tokenizer.tokenize`, a topic, a resource. */
  readonly resource: string;
  /** `allowed`, `denied`, `granted`, `revoked`, `ready`, `stopped`, `failed`. */
  readonly result: string;
  readonly code?: string;
  readonly reason?: string;
}

export type AuditSink = (entry: Omit<AuditEntry, 'time'>) => void;

/**
 * The audit trail: one JSON object per line, only ever appended (the file is opened with
 * O_APPEND), separate from the process log. Each line carries the sha256 of the line before
 * it, so a line removed or edited later breaks the chain and `logomesh audit --verify` says where.
 */
export class AuditLog {
  private readonly stream: WriteStream;
  private prev: string;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.prev = lastLineHash(file);
    this.stream = createWriteStream(file, { flags: 'a', mode: 0o600 });
  }

  readonly record: AuditSink = (entry) => {
    const line = JSON.stringify({ time: Date.now(), ...entry, prev: this.prev });
    this.prev = sha256(line);
    this.stream.write(`${line}\n`);
  };

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

export interface AuditQuery {
  readonly plugin?: string;
  /** ms since the epoch. */
  readonly since?: number;
}

/** Read entries back, filtered; the spec's auditCapabilityUsage. */
export function readAudit(file: string, q: AuditQuery = {}): AuditEntry[] {
  if (!existsSync(file)) return [];
  const out: AuditEntry[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    let e: AuditEntry;
    try {
      e = JSON.parse(line) as AuditEntry;
    } catch {
      // A damaged line is reported by --verify; reading goes on past it.
      continue;
    }
    if (q.since !== undefined && e.time < q.since) continue;
    if (q.plugin !== undefined && e.who !== q.plugin && !e.resource.startsWith(`${q.plugin}.`) && !e.resource.startsWith(`${q.plugin}:`) && e.resource !== q.plugin) continue;
    out.push(e);
  }
  return out;
}

/** Check the hash chain; returns the 1-based line numbers where it breaks. */
export function verifyAudit(file: string): number[] {
  if (!existsSync(file)) return [];
  const broken: number[] = [];
  let prev = '';
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .forEach((line, i) => {
      let e: { prev?: string } = {};
      try {
        e = JSON.parse(line) as { prev?: string };
      } catch {
        // Not JSON: certainly not a line the controller wrote.
      }
      if (e.prev !== prev) broken.push(i + 1);
      prev = sha256(line);
    });
  return broken;
}

function lastLineHash(file: string): string {
  if (!existsSync(file)) return '';
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const last = lines.at(-1);
  return last ? sha256(last) : '';
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
