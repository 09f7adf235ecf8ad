import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { loadPolicy, NO_POLICY, PolicyRejectedError, resolvePolicy, type PolicyIssue } from '../../src/policy/policy.js';
import { generateKeyFiles } from '../../src/signing/keys.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let key: ReturnType<typeof generateKeyFiles>;
let other: ReturnType<typeof generateKeyFiles>;
beforeAll(() => {
  mkdirSync(path.join(dir, 'keys'));
  key = generateKeyFiles(path.join(dir, 'keys', 'release'));
  other = generateKeyFiles(path.join(dir, 'keys', 'other'));
});

let n = 0;
function policyFile(text: string, ext = 'yaml'): string {
  const file = path.join(dir, `policy-${++n}.${ext}`);
  writeFileSync(file, text);
  return file;
}

function issuesOf(file: string): PolicyIssue[] {
  try {
    loadPolicy(file);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyRejectedError);
    const e = err as PolicyRejectedError;
    expect(e.code).toBe('LM_POLICY_INVALID');
    expect(e.details.file).toBe(file);
    for (const i of e.issues) expect(i).toMatchObject({ code: 'LM_POLICY_INVALID', file });
    return [...e.issues];
  }
  throw new Error(`${file} was accepted`);
}

describe('a valid policy', () => {
  it('reads YAML with a key path relative to the policy file and an inline PEM', () => {
    const pem = readFileSync(other.pubFile, 'utf8');
    const file = policyFile(`# operator policy\nsignatures:\n  required: true\n  trustedKeys:\n    - keys/release.pub\n    - |\n${pem.replace(/^/gm, '      ').trimEnd()}\n`);
    const p = loadPolicy(file);
    expect(p.file).toBe(file);
    expect(p.signatures.required).toBe(true);
    expect(p.signatures.trustedKeys.map((k) => k.keyId)).toEqual([key.keyId, other.keyId]);
    expect(p.signatures.trustedKeys.map((k) => k.source)).toEqual([key.pubFile, `${file} /signatures/trustedKeys/1`]);
    expect(Object.isFrozen(p) && Object.isFrozen(p.signatures) && Object.isFrozen(p.signatures.trustedKeys)).toBe(true);
  });

  it('reads JSON, and an absolute key path', () => {
    const p = loadPolicy(policyFile(JSON.stringify({ signatures: { required: true, trustedKeys: [key.pubFile] } }), 'json'));
    expect(p.signatures.trustedKeys).toHaveLength(1);
  });

  it('fills the defaults: signatures not required, no trusted keys', () => {
    for (const text of ['{}\n', 'signatures: {}\n', '$schema: http://logomesh.local/schemas/operator-policy-v1.json\n']) {
      const p = loadPolicy(policyFile(text));
      expect(p.signatures).toEqual({ required: false, trustedKeys: [] });
    }
  });

  it('counts a key listed twice once', () => {
    const p = loadPolicy(policyFile(`signatures:\n  trustedKeys: [keys/release.pub, ${key.pubFile}]\n`));
    expect(p.signatures.trustedKeys).toHaveLength(1);
  });
});

describe('where the policy comes from', () => {
  it('--policy, else LOGOMESH_POLICY, else none', () => {
    const a = policyFile('signatures: {required: false}\n');
    const b = policyFile('signatures: {required: true, trustedKeys: [keys/release.pub]}\n');
    expect(resolvePolicy(undefined, {})).toBe(NO_POLICY);
    expect(resolvePolicy(undefined, { LOGOMESH_POLICY: '' })).toBe(NO_POLICY);
    expect(resolvePolicy(undefined, { LOGOMESH_POLICY: a }).file).toBe(a);
    expect(resolvePolicy(b, { LOGOMESH_POLICY: a }).file).toBe(b);
    expect(NO_POLICY.signatures).toEqual({ required: false, trustedKeys: [] });
  });
});

describe('an invalid policy', () => {
  it('an unknown field, with its line, column, what was expected and what was found', () => {
    const file = policyFile('signatures:\n  required: false\ncolour: blue\n');
    expect(issuesOf(file)).toEqual([
      {
        code: 'LM_POLICY_INVALID',
        file,
        path: '/colour',
        line: 3,
        column: 1,
        expected: 'one of the known fields ($schema, signatures, capabilities, hosts, topics, isolation, monitoring, startupBoost, hostPaths, plugins)',
        found: "unknown field 'colour'",
        message: "expected one of the known fields ($schema, signatures, capabilities, hosts, topics, isolation, monitoring, startupBoost, hostPaths, plugins), found unknown field 'colour'",
      },
    ]);
  });

  it('every problem at once, in file order, and the one-line form in the message', () => {
    const file = policyFile('signatures:\n  required: "yes"\n  trustedKeys: keys/release.pub\n  trusted: []\n');
    const issues = issuesOf(file);
    expect(issues.map((i) => [i.path, i.line, i.expected, i.found])).toEqual([
      ['/signatures/required', 2, 'a value of type boolean', '"yes" (string)'],
      ['/signatures/trustedKeys', 3, 'a value of type array', '"keys/release.pub" (string)'],
      ['/signatures/trusted', 4, 'one of the known fields (required, trustedKeys)', "unknown field 'trusted'"],
    ]);
    try {
      loadPolicy(file);
    } catch (err) {
      expect((err as Error).message.split('\n')).toEqual([
        `${file}: policy rejected with 3 error(s)`,
        `${file}:2:3 LM_POLICY_INVALID /signatures/required: expected a value of type boolean, found "yes" (string)`,
        `${file}:3:3 LM_POLICY_INVALID /signatures/trustedKeys: expected a value of type array, found "keys/release.pub" (string)`,
        `${file}:4:3 LM_POLICY_INVALID /signatures/trusted: expected one of the known fields (required, trustedKeys), found unknown field 'trusted'`,
      ]);
    }
  });

  it('empty and duplicate trusted keys', () => {
    const issues = issuesOf(policyFile(`signatures:\n  trustedKeys: ["", keys/release.pub, keys/release.pub]\n`));
    expect(issues.map((i) => [i.path, i.expected])).toEqual([
      ['/signatures/trustedKeys', 'no duplicate items'],
      ['/signatures/trustedKeys/0', 'at least 1 character(s)'],
    ]);
  });

  it('a key file that does not exist, and keys that are not ed25519 public keys', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    writeFileSync(path.join(dir, 'keys', 'rsa.pub'), rsa);
    const file = policyFile(`signatures:\n  trustedKeys:\n    - keys/missing.pub\n    - keys/rsa.pub\n    - ${key.keyFile}\n    - "-----BEGIN PUBLIC KEY-----\\ngarbage\\n-----END PUBLIC KEY-----\\n"\n`);
    const issues = issuesOf(file);
    expect(issues.map((i) => [i.path, i.line])).toEqual([
      ['/signatures/trustedKeys/0', 3],
      ['/signatures/trustedKeys/1', 4],
      ['/signatures/trustedKeys/2', 5],
      ['/signatures/trustedKeys/3', 6],
    ]);
    expect(issues[0]?.found).toBe(`${path.join(dir, 'keys', 'missing.pub')}: nothing`);
    expect(issues[1]?.found).toBe(`${path.join(dir, 'keys', 'rsa.pub')}: a rsa key, not ed25519`);
    expect(issues[1]?.expected).toBe('an ed25519 public key in SPKI PEM, as logomesh keygen writes to <name>.pub');
    expect(issues[2]?.found).toBe(`${key.keyFile}: a private key (list the .pub file; the private key stays with the signer)`);
    expect(issues[3]?.found).toMatch(/^inline text: not a PEM public key/);
  });

  it('signatures required with no trusted key', () => {
    const [issue, ...rest] = issuesOf(policyFile('signatures:\n  required: true\n'));
    expect(rest).toEqual([]);
    expect(issue).toMatchObject({ path: '/signatures/required', line: 2, found: 'no trusted keys (every plugin would be refused)' });
  });

  it('not well-formed: YAML syntax, duplicate keys, loose JSON, not a mapping, no file', () => {
    expect(issuesOf(policyFile('signatures: [\n'))[0]).toMatchObject({ expected: 'well-formed YAML or JSON with unique keys', line: expect.any(Number) });
    expect(issuesOf(policyFile('signatures: {}\nsignatures: {}\n'))[0]?.found).toMatch(/unique/i);
    expect(issuesOf(policyFile('{"signatures": {},}', 'json'))[0]?.expected).toBe('strict JSON (no comments, trailing commas or single quotes)');
    expect(issuesOf(policyFile('- signatures\n'))[0]).toMatchObject({ path: '', expected: 'a mapping of policy fields', found: '["signatures"] (array)' });
    expect(issuesOf(policyFile(''))[0]).toMatchObject({ path: '', expected: 'a mapping of policy fields' });
    const missing = path.join(dir, 'nope.yaml');
    expect(issuesOf(missing)).toEqual([
      { code: 'LM_POLICY_INVALID', file: missing, path: '', expected: 'a policy file (YAML or JSON)', found: 'nothing', message: 'expected a policy file (YAML or JSON), found nothing' },
    ]);
  });

  it('stops logomesh run before it loads any plugin or reaches the engine', async () => {
    const errs: string[] = [];
    const io: CliIo = { out: () => undefined, err: (l) => void errs.push(l), stdout: process.stdout, stderr: process.stderr };
    const file = policyFile('signatures:\n  required: maybe\n');
    expect(await main(['run', '--policy', file, path.join(dir, 'no-such-plugin')], io)).toBe(1);
    expect(errs[0]).toMatch(/^LM_POLICY_INVALID: .*policy rejected with 1 error/);
  });
});
