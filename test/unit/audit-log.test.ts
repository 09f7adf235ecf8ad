import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, readAudit, verifyAudit } from '../../src/permissions/audit-log.js';

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
});
