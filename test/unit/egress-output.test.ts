import { describe, expect, it } from 'vitest';
import { auditEntry, type EgressDecision } from '../../src/sandbox/egress.js';
import { LineBudget, sinceSeconds, timestampNs } from '../../src/sandbox/egress/proxy-output.js';

describe("following a proxy's output across an engine restart", () => {
  it('orders the engine timestamps to the nanosecond, whatever their precision', () => {
    const a = timestampNs('2024-05-01T10:00:00.1Z');
    const b = timestampNs('2024-05-01T10:00:00.099999999Z');
    const c = timestampNs('2024-05-01T10:00:00Z');
    expect(a).toBe(1714557600100000000n);
    expect(b! < a!).toBe(true);
    expect(c! < b!).toBe(true);
    expect(timestampNs('2024-05-01T12:00:00.5+02:00')).toBe(1714557600500000000n);
    expect(timestampNs('not a time')).toBeUndefined();
  });

  it('asks the engine for the lines from a second before the last one seen (the rest are skipped by timestamp)', () => {
    expect(sinceSeconds(1714557600100000000n)).toBe(1714557599);
  });
});

describe('aggregated decisions in the audit trail', () => {
  const flood: EgressDecision = { plugin: 'flooder', host: null, port: null, method: null, result: 'denied', reason: 'max-connections', count: 953, windowMs: 1004, hosts: [] };

  it('say how many refusals one entry stands for, over how long, with LM_EGRESS_DENIED', () => {
    expect(auditEntry(flood)).toEqual({
      who: 'flooder',
      action: 'network',
      resource: '?:?',
      result: 'denied',
      reason: "max-connections: 953 times in 1.0 s, counted together past the proxy's reporting budget",
      code: 'LM_EGRESS_DENIED',
    });
  });

  it('name a few of the hosts among them', () => {
    const dns: EgressDecision = { plugin: 'p', host: 'x9.exfil.example', port: null, method: 'DNS', qtype: 'TXT', result: 'denied', reason: 'no-dns', count: 400, windowMs: 1000, hosts: ['x1.exfil.example', 'x2.exfil.example'] };
    expect(auditEntry(dns)).toMatchObject({ action: 'dns', resource: 'x9.exfil.example', reason: "no-dns (TXT): 400 times in 1.0 s, counted together past the proxy's reporting budget; among them x1.exfil.example, x2.exfil.example" });
  });
});

describe("a proxy's stderr in the controller's log", () => {
  it('takes 10 lines in 10 s, counts the rest, and says how many with the next line logged', () => {
    let t = 0;
    const budget = new LineBudget(10, 10_000, () => t);
    const taken = Array.from({ length: 1000 }, () => budget.take());
    expect(taken.filter((x) => x.log)).toHaveLength(10);
    expect(taken.some((x) => x.dropped > 0)).toBe(false);
    t = 9_999;
    expect(budget.take()).toEqual({ log: false, dropped: 0 });
    t = 10_000;
    expect(budget.take()).toEqual({ log: true, dropped: 991 });
    t = 30_000;
    expect(budget.take()).toEqual({ log: true, dropped: 0 });
  });
});
