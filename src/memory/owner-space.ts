import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import { mountTmpfs, resizeTmpfs, tmpfsMountsUnder, unmount } from './tmpfs.js';

export interface OwnerSpaceOptions {
  /** The pool's folder: each owner's tmpfs is `<dir>/<owner>`. */
  readonly dir: string;
  /** What all owners may hold together, in bytes. */
  readonly maxBytes: number;
  /** What one owner may hold, in bytes. */
  readonly quotaOf: (owner: string) => number;
  readonly audit: AuditSink;
}

/**
 * Each owning plugin's room in the pool: the bytes accounted to it (whole pages) and its own
 * tmpfs, whose size is always exactly that, so the kernel refuses what the accounting
 * refuses. The quota checks (LM_MEMORY_QUOTA, audited) are made here, before any tmpfs grows.
 */
export class OwnerSpaces {
  private readonly used = new Map<string, number>();

  constructor(private readonly opts: OwnerSpaceOptions) {}

  usedBy(owner: string): number {
    return this.used.get(owner) ?? 0;
  }

  owners(): string[] {
    return [...this.used.keys()];
  }

  /** Account bytes found on the pool taken over from an earlier controller (no check, no resize). */
  account(owner: string, bytes: number): void {
    this.used.set(owner, this.usedBy(owner) + bytes);
  }

  /** Account `bytes` more to `owner` (LM_MEMORY_QUOTA past its quota or the pool's), and let its tmpfs hold them. */
  async reserve(owner: string, bytes: number, what: string, quota = this.opts.quotaOf(owner)): Promise<void> {
    const used = this.usedBy(owner);
    const total = [...this.used.values()].reduce((a, b) => a + b, 0);
    const refuse = (reason: string, expected: string): never => {
      this.opts.audit({ who: owner, action: `segment ${what}`, resource: 'pool', result: 'denied', code: 'LM_MEMORY_QUOTA', reason });
      throw new LogoMeshError('LM_MEMORY_QUOTA', reason, { field: 'size', expected, found: `${used + bytes} bytes` });
    };
    if (used + bytes > quota) refuse(`plugin ${owner} would hold ${used + bytes} bytes of shared memory; its quota is ${quota} bytes (${used} in use)`, `at most ${quota} bytes for ${owner}`);
    if (total + bytes > this.opts.maxBytes) refuse(`the pool would hold ${total + bytes} bytes; its size is ${this.opts.maxBytes} bytes (${total} in use)`, `at most ${this.opts.maxBytes} bytes in the pool`);
    this.used.set(owner, used + bytes);
    try {
      await this.grow(owner, 0);
    } catch (err) {
      this.used.set(owner, used);
      throw err;
    }
  }

  /** Account `bytes` less to `owner`, and shrink its tmpfs (gone when `empty`: it holds no segment). */
  async release(owner: string, bytes: number, empty: boolean): Promise<void> {
    this.used.set(owner, Math.max(0, this.usedBy(owner) - bytes));
    await this.shrink(owner, empty);
  }

  /** The owner's tmpfs, mounted on first use, sized to its accounted bytes plus `extra`. */
  async grow(owner: string, extra: number): Promise<void> {
    const dir = path.join(this.opts.dir, owner);
    const size = this.usedBy(owner) + extra;
    if (!tmpfsMountsUnder(dir).includes(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o711 });
      await mountTmpfs(dir, size, `logomesh-pool-${owner}`, false);
    } else if (!(await resizeTmpfs(dir, size))) {
      throw new LogoMeshError('LM_MEMORY_POOL', `cannot resize the tmpfs of ${owner}'s segments to ${size} bytes`, { expected: 'a tmpfs the controller can remount', found: dir });
    }
  }

  /**
   * Bring the owner's tmpfs back to its accounted bytes; the kernel refuses while an old copy
   * is still mapped (after setReadOnly), and the room stays until a later change. An owner
   * that holds no segment (`empty`) loses its tmpfs.
   */
  async shrink(owner: string, empty: boolean): Promise<void> {
    const dir = path.join(this.opts.dir, owner);
    if (this.usedBy(owner) === 0 && empty) {
      this.used.delete(owner);
      await unmount(dir);
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    await resizeTmpfs(dir, this.usedBy(owner));
  }

  clear(): void {
    this.used.clear();
  }
}
