import type { KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { formatIssue, LogoMeshError, type ManifestIssue } from '../errors.js';
import { show } from '../manifest/schema.js';
import { parseManifestSource } from '../manifest/source.js';
import { keyIdOf, parsePublicKey } from '../signing/keys.js';
import schema from './policy.schema.json' with { type: 'json' };

export { schema as policySchema };

/**
 * The operator policy: what the operator requires of every plugin, whatever its manifest
 * says. One YAML or JSON file, validated whole against policy.schema.json. Today it holds
 * the signature rules; it is the place for later operator rules too.
 */

/** The environment variable naming the policy file when no --policy is given. */
export const POLICY_ENV = 'LOGOMESH_POLICY';
/** Larger policy files are refused before parsing. */
export const MAX_POLICY_BYTES = 256 * 1024;

export interface TrustedKey {
  /** keyIdOf the key: what plugin.sig names its signer by. */
  readonly keyId: string;
  readonly key: KeyObject;
  /** Where the policy lists it: the .pub file, or `<policy file> /signatures/trustedKeys/<i>` for inline PEM. */
  readonly source: string;
}

export interface SignaturePolicy {
  /** Refuse plugins that are not signed by a trusted key. */
  readonly required: boolean;
  readonly trustedKeys: readonly TrustedKey[];
}

export interface Policy {
  /** Absolute path of the policy file; absent for NO_POLICY. */
  readonly file?: string;
  readonly signatures: SignaturePolicy;
}

/** In force when no policy file is given: signatures are not required (a plugin.sig present is still checked). */
export const NO_POLICY: Policy = Object.freeze({ signatures: Object.freeze({ required: false, trustedKeys: Object.freeze([]) }) });

/** One problem in a policy file: the same shape as a manifest issue (file, JSON pointer, line, expected, found). */
export type PolicyIssue = ManifestIssue;

/** A policy file was rejected. It is accepted whole or not at all, so this lists every issue. */
export class PolicyRejectedError extends LogoMeshError {
  readonly issues: readonly PolicyIssue[];

  constructor(file: string, issues: PolicyIssue[]) {
    super('LM_POLICY_INVALID', `${file}: policy rejected with ${issues.length} error(s)\n${issues.map(formatIssue).join('\n')}`, { file, issues });
    this.name = 'PolicyRejectedError';
    this.issues = Object.freeze([...issues]);
  }
}

/**
 * The policy in force: the file `flag` (a --policy option) names, else the one
 * LOGOMESH_POLICY names, else NO_POLICY. Throws PolicyRejectedError (LM_POLICY_INVALID).
 */
export function resolvePolicy(flag?: string, env: NodeJS.ProcessEnv = process.env): Policy {
  const file = flag || env[POLICY_ENV] || undefined;
  return file ? loadPolicy(file) : NO_POLICY;
}

/**
 * resolvePolicy, then make the file this process's LOGOMESH_POLICY (absolute), so that
 * whatever loads plugins later in this process, or in a controller it starts in the
 * background, applies the same policy.
 */
export function applyPolicyOption(flag?: string): Policy {
  const policy = resolvePolicy(flag);
  if (policy.file) process.env[POLICY_ENV] = policy.file;
  return policy;
}

type Issue = Omit<PolicyIssue, 'file' | 'code'>;

/** Load and validate a policy file (YAML or JSON). Throws PolicyRejectedError listing every issue. */
export function loadPolicy(target: string): Policy {
  const file = path.resolve(target);
  const reject = (issues: Issue[]): never => {
    throw new PolicyRejectedError(file, issues.map((i) => ({ code: 'LM_POLICY_INVALID' as const, file, ...i })));
  };
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile()) {
    const found = st ? 'a folder or special file' : 'nothing';
    reject([{ path: '', expected: 'a policy file (YAML or JSON)', found, message: `expected a policy file (YAML or JSON), found ${found}` }]);
  }
  if (st!.size > MAX_POLICY_BYTES) {
    reject([{ path: '', expected: `at most ${MAX_POLICY_BYTES} bytes`, found: `${st!.size} bytes`, message: `expected at most ${MAX_POLICY_BYTES} bytes, found ${st!.size} bytes` }]);
  }
  const text = readFileSync(file, 'utf8');
  const source = parseManifestSource(text);
  if (source.errors.length > 0) {
    reject(source.errors.map((e) => ({ path: e.path, line: e.line, column: e.column, expected: 'well-formed YAML or JSON with unique keys', found: e.message, message: e.message })));
  }
  if (file.endsWith('.json')) {
    try {
      JSON.parse(text);
    } catch (err) {
      const reason = (err as Error).message;
      reject([{ path: '', expected: 'strict JSON (no comments, trailing commas or single quotes)', found: reason, message: `expected strict JSON, found: ${reason}` }]);
    }
  }
  const data = source.value;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    const found = show(data);
    reject([{ path: '', ...(source.locate('') ?? { line: 1, column: 1 }), expected: 'a mapping of policy fields', found, message: `expected a mapping of policy fields, found ${found}` }]);
  }

  const issues = validateAgainstPolicySchema(data);
  const raw = data as { signatures: { required: boolean; trustedKeys: string[] } };
  const trustedKeys: TrustedKey[] = [];
  if (issues.length === 0) {
    raw.signatures.trustedKeys.forEach((entry, i) => {
      const at = `/signatures/trustedKeys/${i}`;
      const inline = entry.trimStart().startsWith('-----BEGIN');
      const keyFile = inline ? undefined : path.resolve(path.dirname(file), entry);
      let pem = entry;
      if (keyFile) {
        try {
          pem = readFileSync(keyFile, 'utf8');
        } catch (err) {
          const found = `${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
          issues.push({ path: at, expected: 'a readable .pub file (paths are relative to the policy file) or inline PEM', found, message: `expected a readable .pub file, found ${found}` });
          return;
        }
      }
      const parsed = parsePublicKey(pem);
      if ('reason' in parsed) {
        const found = `${keyFile ?? 'inline text'}: ${parsed.reason}`;
        issues.push({ path: at, expected: 'an ed25519 public key in SPKI PEM, as logomesh keygen writes to <name>.pub', found, message: `expected an ed25519 public key, found ${found}` });
        return;
      }
      const keyId = keyIdOf(parsed.key);
      if (trustedKeys.some((k) => k.keyId === keyId)) return; // the same key listed twice
      trustedKeys.push(Object.freeze({ keyId, key: parsed.key, source: keyFile ?? `${file} ${at}` }));
    });
    if (raw.signatures.required && raw.signatures.trustedKeys.length === 0) {
      issues.push({
        path: '/signatures/required',
        expected: 'at least one key in signatures.trustedKeys when signatures are required',
        found: 'no trusted keys (every plugin would be refused)',
        message: 'expected at least one key in signatures.trustedKeys when signatures are required, found none',
      });
    }
  }
  if (issues.length > 0) {
    const located = issues.map((i) => ({ ...source.locate(i.path), ...i }));
    located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    reject(located);
  }
  return Object.freeze({
    file,
    signatures: Object.freeze({ required: raw.signatures.required, trustedKeys: Object.freeze(trustedKeys) }),
  });
}

let compiled: ValidateFunction | undefined;

/** Validate (and fill defaults into) `data` in place. */
function validateAgainstPolicySchema(data: unknown): Issue[] {
  compiled ??= new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true }).compile(schema);
  if (compiled(data)) return [];
  return (compiled.errors ?? []).map(describe);
}

function describe(err: ErrorObject): Issue {
  const p = err.params as Record<string, unknown>;
  let path = err.instancePath;
  let expected: string;
  let found = show(err.data);
  switch (err.keyword) {
    case 'additionalProperties': {
      path = `${path}/${String(p.additionalProperty)}`;
      const known = Object.keys((err.parentSchema as { properties?: object }).properties ?? {});
      expected = `one of the known fields (${known.join(', ')})`;
      found = `unknown field '${String(p.additionalProperty)}'`;
      break;
    }
    case 'type':
      expected = `a value of type ${String(p.type)}`;
      break;
    case 'minLength':
      expected = `at least ${String(p.limit)} character(s)`;
      break;
    case 'uniqueItems':
      expected = 'no duplicate items';
      found = `items ${String(p.j)} and ${String(p.i)} are equal`;
      break;
    default:
      expected = err.message ?? err.keyword;
  }
  return { path, expected, found, message: `expected ${expected}, found ${found}` };
}
