import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/policy.js';
import { report, runCaptured, tempDir } from '../integration/support.js';
import { attack, copyAttack, expectCleanedUp } from './support.js';

/**
 * A system call on LogoMesh's deny list, asked for by the manifest (security.syscalls) and
 * allowed by the operator policy (capabilities.allowedSyscalls): get_mempolicy, which only
 * reads the process's NUMA policy. Denied, it fails with EPERM; allowed, it returns 0 and
 * MPOL_DEFAULT (0). x86_64 system call numbers.
 */
describe('security.syscalls, decided by the policy', () => {
  const asking = () => {
    const dir = copyAttack('numa');
    appendFileSync(path.join(dir, 'plugin.yaml'), 'security:\n  syscalls: [get_mempolicy]\n');
    return dir;
  };
  const policy = (text: string) => {
    const file = path.join(tempDir('lm-policy-syscalls-'), 'policy.yaml');
    writeFileSync(file, text);
    return loadPolicy(file);
  };

  it('not asked for: EPERM from the seccomp profile', async () => {
    const { report: r } = await attack('numa');
    expect(r).toEqual({ getMempolicy: 'EPERM', mode: -1 });
  });

  it('asked for with no policy: refused before any container exists (LM_POLICY_DENIED)', async () => {
    await expect(runCaptured(asking())).rejects.toMatchObject({ code: 'LM_POLICY_DENIED', details: { path: '/security/syscalls/0' } });
  });

  it('asked for under a policy that does not list it: refused', async () => {
    await expect(runCaptured(asking(), { policy: policy('capabilities: { allowedSyscalls: [mbind] }\n') })).rejects.toMatchObject({ code: 'LM_POLICY_DENIED' });
  });

  it('asked for and allowed by the policy (a per-plugin override): the call succeeds in the container', async () => {
    const run = await runCaptured(asking(), { policy: policy('plugins:\n  attack-numa: { capabilities: { allowedSyscalls: [get_mempolicy] } }\n') });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(report(run.stdout)).toEqual({ getMempolicy: 'ok', mode: 0 });
    await expectCleanedUp(run.containerId);
  });
});
