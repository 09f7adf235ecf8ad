import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, auditEntries, checkAudit, readAudit, verifyAudit } from '../../src/audit/audit-log.js';
import { AuditThrottle } from '../../src/audit/audit-throttle.js';

describe('audit log', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const file = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'lm-audit-'));
    dirs.push(d);
    return path.join(d, 'audit.jsonl');
  };

  it('appends JSON lines, private to its owner, across reopenings, with an intact chain', async () => {
    const f = file();
    const a = new AuditLog(f);
    a.record({ who: 'alpha', action: 'call', resource: 'beta.echo', result: 'allowed' });
    a.record({ who: 'alpha', action: 'call', resource: 'beta.secret', result: 'denied', code: 'LM_PERMISSION_DENIED' });
    await a.close();
    const b = new AuditLog(f);
    b.record({ who: 'operator', action: 'revoke', resource: 'alpha:beta.echo', result: 'revoked' });
    await b.close();
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readAudit(f).map((e) => e.result)).toEqual(['allowed', 'denied', 'revoked']);
    expect(readAudit(f, { plugin: 'beta' }).map((e) => e.resource)).toEqual(['beta.echo', 'beta.secret']);
    expect(readAudit(f, { since: Date.now() + 60_000 })).toEqual([]);
    expect(verifyAudit(f)).toEqual([]);
  });

  it('a removed or edited line breaks the chain where it happened', async () => {
    const f = file();
    const a = new AuditLog(f);
    for (let i = 0; i < 4; i++) a.record({ who: 'p', action: 'call', resource: `x.m${i}`, result: 'allowed' });
    await a.close();
    const lines = readFileSync(f, 'utf8').trim().split('\n');
    writeFileSync(f, [lines[0], lines[2], lines[3]].join('\n') + '\n');
    expect(verifyAudit(f)).toEqual([2]);
    writeFileSync(f, [lines[0], lines[1]!.replace('allowed', 'denied'), lines[2], lines[3]].join('\n') + '\n');
    expect(verifyAudit(f)).toEqual([3]);
    writeFileSync(f, [lines[0], 'not json at all', lines[1]].join('\n') + '\n');
    expect(verifyAudit(f)).toEqual([2, 3]);
    expect(readAudit(f)).toHaveLength(2);
  });

  it('rotates by size: each new file chains to the last line of the one before, the check covers all of them, and the oldest beyond keep are removed', async () => {
    const f = file();
    const a = new AuditLog(f, { maxBytes: 2_000, keep: 3 });
    for (let i = 0; i < 60; i++) a.record({ who: 'p', action: 'call', resource: `x.m${i}`, result: 'allowed' });
    await a.close();
    const files = readdirSync(path.dirname(f)).sort();
    expect(files.filter((n) => /^audit\.\d{8}\.jsonl$/.test(n))).toHaveLength(3);
    for (const n of files) expect(statSync(path.join(path.dirname(f), n)).size).toBeLessThanOrEqual(2_000);
    const check = checkAudit(f);
    expect(check.breaks).toEqual([]);
    expect(check.startsAfterRemovedFiles).toBe(true);
    // The newest entries are all there, in order, across the files.
    const kept = readAudit(f).map((e) => Number(e.resource.slice(3)));
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 60 - kept.length + i));
    // A controller started again continues the chain from the end of the newest file.
    const b = new AuditLog(f, { maxBytes: 2_000, keep: 3 });
    b.record({ who: 'p', action: 'call', resource: 'x.again', result: 'allowed' });
    await b.close();
    expect(checkAudit(f).breaks).toEqual([]);
    // Editing a rotated file breaks the chain there, named by file and line.
    const oldest = path.join(path.dirname(f), readdirSync(path.dirname(f)).sort().find((n) => /^audit\.\d{8}\.jsonl$/.test(n))!);
    const lines = readFileSync(oldest, 'utf8').trim().split('\n');
    writeFileSync(oldest, [lines[0], lines[1]!.replace('allowed', 'denied'), ...lines.slice(2)].join('\n') + '\n');
    expect(checkAudit(f).breaks).toEqual([{ file: oldest, line: 3, why: 'chain' }]);
  });

  it('reads a trail larger than memory allows as one string, line by line; a damaged or huge line is reported and the check goes on', async () => {
    const f = file();
    const a = new AuditLog(f);
    a.record({ who: 'p', action: 'call', resource: 'x.first', result: 'allowed' });
    await a.close();
    // A line of 3 MiB (not one the controller wrote) and a damaged one, then a good entry chained to nothing.
    appendFileSync(f, `${'z'.repeat(3 * 1024 * 1024)}\nnot json\n`);
    const c = new AuditLog(f);
    c.record({ who: 'p', action: 'call', resource: 'x.last', result: 'allowed' });
    await c.close();
    expect(checkAudit(f).breaks.map((b) => `${b.line} ${b.why}`)).toEqual(['2 damaged', '3 damaged']);
    expect([...auditEntries(f)].map((e) => e.resource)).toEqual(['x.first', 'x.last']);
  });

  it('the throttle writes the first of a kind at once and one entry with the count of its repeats; nothing is lost', () => {
    const out: Record<string, unknown>[] = [];
    const t = new AuditThrottle((e) => out.push(e), { windowMs: 60_000, maxKeys: 2, maxReason: 20 });
    for (let i = 0; i < 100; i++) t.record({ who: 'p', action: 'violation', resource: 'hub', result: 'denied', code: 'LM_PROTOCOL', reason: 'x'.repeat(1000) });
    for (let i = 0; i < 50; i++) t.record({ who: 'p', action: 'call', resource: `t.m${i}`, result: 'denied', code: 'LM_PERMISSION_DENIED' });
    expect(out).toHaveLength(3);
    expect(String(out[0]!.reason)).toMatch(/^x{20}… \(1000 characters\)$/);
    expect(out[2]).toMatchObject({ resource: '*', reason: 'various resources; the first: t.m1' });
    t.close();
    expect(out.map((e) => e.count ?? 1).reduce((a, b) => Number(a) + Number(b), 0)).toBe(150);
  });
});
