import { cpSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, report, runCaptured, tempDir } from './support.js';

/**
 * The Kubernetes end-to-end tests (test/kube/) judge a cluster by what test/kube/probe/probe.py
 * reports from inside a Pod. No cluster runs here, so the probe itself is checked in a Docker
 * sandbox, whose facts are known: if it reports these right, its reports from a Pod can be
 * trusted. The one fact that differs on purpose is /tmp: noexec on Docker, not on Kubernetes.
 */
interface ProbeFacts {
  uid: number;
  status: Record<string, string>;
  writeRoot: string;
  writeTmp: string;
  execTmp: string;
  tmpSizeMB: number;
  bpf: string;
  mount: string;
  serviceAccountToken: boolean;
}

describe('the Kubernetes sandbox probe, checked in a Docker sandbox', () => {
  let facts: ProbeFacts;
  beforeAll(async () => {
    const dir = path.join(tempDir('lm-kube-probe-'), 'probe');
    cpSync(path.join(REPO, 'test', 'kube', 'probe'), dir, { recursive: true });
    const r = await runCaptured(dir);
    expect(r.exitCode, r.stderr).toBe(0);
    facts = report<{ probe: ProbeFacts }>(r.stdout).probe;
  });

  it('reports a non-root user with no capabilities, no_new_privs and a seccomp filter', () => {
    expect(facts.uid).toBeGreaterThan(0);
    expect(facts.status.CapEff).toBe('0000000000000000');
    expect(facts.status.CapPrm).toBe('0000000000000000');
    expect(facts.status.NoNewPrivs).toBe('1');
    expect(facts.status.Seccomp).toBe('2');
  });

  it('reports the read-only root, the writable /tmp of maxTmpMB, and noexec there', () => {
    expect(facts.writeRoot).toBe('EROFS');
    expect(facts.writeTmp).toBe('ok');
    expect(facts.tmpSizeMB).toBe(8);
    expect(facts.execTmp).toBe('EACCES');
  });

  it("reports LogoMesh's seccomp answers: EPERM for bpf, SIGSYS (31) for mount", () => {
    expect(facts.bpf).toBe('EPERM');
    expect(facts.mount).toBe('signal-31');
  });

  it('reports no API token outside Kubernetes', () => {
    expect(facts.serviceAccountToken).toBe(false);
  });
});
