import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ContainerCreateOptions } from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { boostSpec, endAdoptedBoost, startCrowd, StartupBoost, type CpuUpdate } from '../../src/controller/startup-boost.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadPolicy, NO_POLICY, PolicyRejectedError, type Policy } from '../../src/policy/policy.js';
import { DEFAULT_STARTUP_BOOST, startupBoostFor } from '../../src/policy/startup-boost.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-boost-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function policy(text: string): Policy {
  const file = path.join(dir, `policy-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, text);
  return loadPolicy(file);
}

describe('the policy decides the start-up CPU boost', () => {
  it('defaults to one core for at most 2 s, above a lower declared quota only', () => {
    expect(DEFAULT_STARTUP_BOOST).toEqual({ cpuPercent: 100, maxMs: 2_000 });
    expect(startupBoostFor(NO_POLICY, 'p', 25)).toMatchObject({ boost: true, cpuPercent: 100, maxMs: 2_000 });
    expect(startupBoostFor(NO_POLICY, 'p', 100)).toMatchObject({ boost: false, why: expect.stringContaining('already at or above') });
    expect(startupBoostFor(NO_POLICY, 'p', 200)).toMatchObject({ boost: false });
  });

  it('never goes above the ceiling of maxCpuPercent the policy sets for the plugin', () => {
    const p = policy('capabilities: { maxCpuPercent: 60 }\nstartupBoost: { cpuPercent: 300 }\nplugins:\n  tight: { capabilities: { maxCpuPercent: 30 } }\n');
    expect(startupBoostFor(p, 'any', 25)).toMatchObject({ boost: true, cpuPercent: 60 });
    // The plugin's own capabilities replace the policy-wide ones, as for every ceiling.
    expect(startupBoostFor(p, 'tight', 25)).toMatchObject({ boost: true, cpuPercent: 30 });
    expect(startupBoostFor(p, 'tight', 30)).toMatchObject({ boost: false });
  });

  it('is turned off or changed policy-wide or for one plugin, naming the rule', () => {
    const p = policy('startupBoost: { cpuPercent: 0 }\nplugins:\n  fast: { startupBoost: { cpuPercent: 200, maxMs: 500 } }\n  proto: { startupBoost: { cpuPercent: 0 } }\n');
    expect(startupBoostFor(p, 'any', 25)).toMatchObject({ boost: false, why: expect.stringContaining('/startupBoost') });
    expect(startupBoostFor(p, 'fast', 25)).toEqual({ boost: true, cpuPercent: 200, maxMs: 500, rule: `${p.file} /plugins/fast/startupBoost` });
    expect(startupBoostFor(p, 'proto', 25)).toMatchObject({ boost: false, why: expect.stringContaining('/plugins/proto/startupBoost') });
    // A plugin id that is an Object.prototype name finds no override.
    expect(startupBoostFor(p, 'constructor', 25)).toMatchObject({ boost: false });
  });

  it('is off under gVisor, whose runsc cannot change a running container (docker update fails)', () => {
    expect(startupBoostFor(NO_POLICY, 'p', 25, 'runsc')).toMatchObject({ boost: false, why: expect.stringContaining('runsc') });
    expect(startupBoostFor(NO_POLICY, 'p', 25, 'runc')).toMatchObject({ boost: true });
  });

  it('is off while the plugins starting at once fill the CPUs at their declared quotas, on again when they do not', () => {
    // Two CPUs: eight starts at 25% share them whole, a boost could give none of them more.
    expect(startupBoostFor(NO_POLICY, 'p', 25, undefined, { starting: 8, cpus: 2 })).toMatchObject({ boost: false, why: expect.stringContaining('8 plugins are starting at once') });
    expect(startupBoostFor(NO_POLICY, 'p', 25, undefined, { starting: 16, cpus: 2 })).toMatchObject({ boost: false });
    expect(startupBoostFor(NO_POLICY, 'p', 25, undefined, { starting: 7, cpus: 2 })).toMatchObject({ boost: true, cpuPercent: 100 });
    expect(startupBoostFor(NO_POLICY, 'p', 10, undefined, { starting: 16, cpus: 2 })).toMatchObject({ boost: true });
    expect(startupBoostFor(NO_POLICY, 'p', 25, undefined, { starting: 1, cpus: 2 })).toMatchObject({ boost: true });
    // Turned off by the policy says so, whatever the crowd.
    expect(startupBoostFor(policy('startupBoost: { cpuPercent: 0 }\n'), 'p', 25, undefined, { starting: 16, cpus: 2 })).toMatchObject({ boost: false, why: expect.stringContaining('turned off') });
  });

  it('counts the plugins starting now, and a standby once beside them', () => {
    const records = (['starting', 'ready', 'starting', 'loaded', 'failed', 'stopping', 'starting'] as const).map((state) => ({ state }));
    // A starting plugin is among the records; a ready plugin's standby is counted once beside them.
    expect(startCrowd(records, records[0]!, 2)).toEqual({ starting: 3, cpus: 2 });
    expect(startCrowd(records, records[1]!, 2)).toEqual({ starting: 4, cpus: 2 });
    expect(startCrowd([], { state: 'ready' }, 4)).toEqual({ starting: 1, cpus: 4 });
  });

  it('refuses a bad startupBoost section with LM_POLICY_INVALID naming the field', () => {
    for (const [text, at] of [
      ['startupBoost: { cpuPercent: 801 }', '/startupBoost/cpuPercent'],
      ['startupBoost: { maxMs: 50 }', '/startupBoost/maxMs'],
      ['startupBoost: { maxMs: 15001 }', '/startupBoost/maxMs'],
      ['startupBoost: { cpuPercent: 1.5 }', '/startupBoost/cpuPercent'],
      ['startupBoost: { forever: true }', '/startupBoost/forever'],
      ['plugins:\n  p: { startupBoost: { cpuPercent: -1 } }', '/plugins/p/startupBoost/cpuPercent'],
    ] as const) {
      const file = path.join(dir, `bad-${Math.random().toString(16).slice(2)}.yaml`);
      writeFileSync(file, `${text}\n`);
      let issues: PolicyRejectedError['issues'] = [];
      try {
        loadPolicy(file);
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyRejectedError);
        issues = (err as PolicyRejectedError).issues;
      }
      expect(issues.map((i) => i.path), text).toContain(at);
    }
  });
});

describe('a boost written into a container spec', () => {
  it('sets the boosted quota and shares and labels both quotas', () => {
    const spec: ContainerCreateOptions = { Labels: { a: 'b' }, HostConfig: { CpuPeriod: 100_000, CpuQuota: 25_000, CpuShares: 256, Memory: 1 } };
    boostSpec(spec, 100, 25);
    expect(spec.HostConfig).toEqual({ CpuPeriod: 100_000, CpuQuota: 100_000, CpuShares: 1024, Memory: 1 });
    expect(spec.Labels).toEqual({ a: 'b', [LABEL.cpuBoost]: '100000', [LABEL.cpuDeclared]: '25000' });
  });
});

/** A StartupBoost over a scripted engine: each update call takes the next answer (an error to throw, or nothing). */
function scripted(answers: (Error | undefined)[], maxMs = 60_000, declared = () => 25) {
  const calls: Parameters<CpuUpdate>[] = [];
  const audit: AuditEntry[] = [];
  const failed: string[] = [];
  const update: CpuUpdate = async (...args) => {
    calls.push(args);
    const a = answers.shift();
    if (a) throw a;
  };
  const boost = new StartupBoost('p', { boost: true, cpuPercent: 100, maxMs, rule: 'r' }, { update, audit: (e) => void audit.push(e as AuditEntry), log: silentLogger, declaredPercent: declared, onFailed: (e) => failed.push(e.code) });
  return { boost, calls, audit, failed };
}

const engineError = (statusCode: number) => Object.assign(new Error(`engine said ${statusCode}`), { statusCode });

describe('one container boost, from its start to its end', () => {
  it('ends once at the hello: the declared quota and shares, audited with what ended it', async () => {
    const s = scripted([]);
    s.boost.begin('c1');
    await Promise.all([s.boost.end('ready'), s.boost.end('ready'), s.boost.end('deadline')]);
    expect(s.calls).toEqual([['c1', { CpuPeriod: 100_000, CpuQuota: 25_000, CpuShares: 256 }]]);
    expect(s.boost.status).toMatchObject({ cpuPercent: 100, declaredPercent: 25, endedBy: 'ready' });
    expect(s.audit.map((e) => `${e.action} ${e.result}`)).toEqual(['boost started', 'boost ended']);
    expect(s.failed).toEqual([]);
  });

  it('ends at the deadline without a hello; the hello after it changes nothing', async () => {
    const s = scripted([], 150);
    s.boost.begin('c1');
    await new Promise((r) => setTimeout(r, 400));
    expect(s.boost.status.endedBy).toBe('deadline');
    await s.boost.end('ready');
    expect(s.calls).toHaveLength(1);
  });

  it("returns to the operator's live limit set during the boost, not the manifest's", async () => {
    let declared = 25;
    const s = scripted([], 60_000, () => declared);
    s.boost.begin('c1');
    declared = 40;
    await s.boost.end('ready');
    expect(s.calls[0]![1]).toMatchObject({ CpuQuota: 40_000 });
    expect(s.boost.status.declaredPercent).toBe(40);
  });

  it('retries an engine error, and after the last one stops the container: LM_BOOST_FAILED, audited', async () => {
    const ok = scripted([engineError(500)]);
    ok.boost.begin('c1');
    await ok.boost.end('ready');
    expect(ok.calls).toHaveLength(2);
    expect(ok.boost.status.endedBy).toBe('ready');

    const bad = scripted([engineError(500), engineError(500), engineError(500)]);
    bad.boost.begin('c1');
    await bad.boost.end('ready');
    expect(bad.calls).toHaveLength(3);
    expect(bad.failed).toEqual(['LM_BOOST_FAILED']);
    expect(bad.boost.error?.code).toBe('LM_BOOST_FAILED');
    expect(bad.boost.error?.message).toMatch(/could not be lowered from the start-up boost of 100% to 25%.*the container is stopped/);
    expect(bad.boost.status.endedBy).toBe('failed');
    expect(bad.audit.at(-1)).toMatchObject({ action: 'boost', result: 'failed', code: 'LM_BOOST_FAILED' });
  });

  it('a container already gone (404) has nothing left boosted: no retry, no failure', async () => {
    const s = scripted([engineError(404)]);
    s.boost.begin('c1');
    await s.boost.end('ready');
    expect(s.calls).toHaveLength(1);
    expect(s.boost.status.endedBy).toBe('gone');
    expect(s.failed).toEqual([]);
  });

  it('cancelled with its container: the deadline does not fire', async () => {
    const s = scripted([], 100);
    s.boost.begin('c1');
    s.boost.cancel();
    await new Promise((r) => setTimeout(r, 250));
    expect(s.calls).toEqual([]);
  });
});

describe('an adopted container still boosted', () => {
  const labels = { [LABEL.cpuBoost]: '100000', [LABEL.cpuDeclared]: '25000' };
  const at = (quota: number) => async () => ({ HostConfig: { CpuQuota: quota } });

  it('is lowered to the declared quota its labels record', async () => {
    const calls: Parameters<CpuUpdate>[] = [];
    const update: CpuUpdate = async (...a) => void calls.push(a);
    expect(await endAdoptedBoost(labels, at(100_000), 'c1', update)).toEqual({ from: 100, to: 25 });
    expect(calls).toEqual([['c1', { CpuPeriod: 100_000, CpuQuota: 25_000, CpuShares: 256 }]]);
  });

  it('is left alone when its quota is no longer the boost (an operator changed it), or it has no boost labels', async () => {
    const update: CpuUpdate = async () => {
      throw new Error('not called');
    };
    expect(await endAdoptedBoost(labels, at(40_000), 'c1', update)).toBeUndefined();
    expect(await endAdoptedBoost({}, at(100_000), 'c1', update)).toBeUndefined();
    expect(await endAdoptedBoost({ [LABEL.cpuBoost]: 'x', [LABEL.cpuDeclared]: '25000' }, at(100_000), 'c1', update)).toBeUndefined();
  });

  it('an engine that refuses is LM_BOOST_FAILED (the adoption then starts the plugin anew)', async () => {
    const update: CpuUpdate = async () => {
      throw engineError(500);
    };
    await expect(endAdoptedBoost(labels, at(100_000), 'c1', update)).rejects.toMatchObject({ code: 'LM_BOOST_FAILED' });
  });
});
