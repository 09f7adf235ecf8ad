import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { clipIssue, formatIssue, LogoMeshError, MAX_ISSUES, type ManifestIssue } from '../errors.js';
import { describeSchemaError, show } from '../schema-errors.js';
import { CACHE_DIR } from '../paths.js';
import { schemaValidator } from '../schema-validator.js';
import type { FsPermission } from '../manifest/types.js';
import { parseManifestSource } from '../manifest/source.js';
import { decodeUtf8, readRegularFile } from '../read-file.js';
import { deniedSyscalls } from '../seccomp/profiles.js';
import { keyIdOf, parsePublicKey } from '../signing/keys.js';
import type { CapabilityRules, HostPathRule, IsolationRules, MonitoringPolicy, Policy, PluginOverride, StartupBoostPolicy, TopicRules, TrustedKey } from './policy-types.js';
import schema from './policy.schema.json' with { type: 'json' };

export type * from './policy-types.js';

/** The resource fields a policy may put a ceiling on (the manifest's `resources`). */
export const RESOURCE_CEILINGS = ['maxMemoryMB', 'maxCpuPercent', 'maxFileHandles', 'maxNetworkConnections', 'maxProcesses', 'maxTmpMB'] as const;

export { schema as policySchema };

/**
 * The operator policy: what the operator requires of every plugin, whatever its manifest
 * says. One YAML or JSON file, validated whole against policy.schema.json. Today it holds
 * the signature rules, ceilings on the capabilities and resources a manifest may ask for,
 * the hosts any plugin may be granted, the host paths the operator may grant, and the
 * start-up CPU boost (decisions.ts and startup-boost.ts apply them). Its types are in
 * policy-types.ts.
 */

/** The environment variable naming the policy file when no --policy is given. */
const POLICY_ENV = 'LOGOMESH_POLICY';
/** Larger policy files are refused before parsing. */
const MAX_POLICY_BYTES = 256 * 1024;
/** A trusted key's .pub file is a few hundred bytes; larger ones are refused unread. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * In force when no policy file is given: signatures are not required (a plugin.sig present
 * is still checked), no ceilings, no host limit, and no host path can be granted.
 */
export const NO_POLICY: Policy = Object.freeze({
  signatures: Object.freeze({ required: false, trustedKeys: Object.freeze([]) }),
  capabilities: Object.freeze({}),
  hostPaths: Object.freeze([]),
  plugins: Object.freeze({}),
});

/** One problem in a policy file: the same shape as a manifest issue (file, JSON pointer, line, expected, found). */
export type PolicyIssue = ManifestIssue;

/** A policy file was rejected. It is accepted whole or not at all, so this lists every issue. */
export class PolicyRejectedError extends LogoMeshError {
  readonly issues: readonly PolicyIssue[];

  constructor(file: string, all: PolicyIssue[]) {
    const issues = all.map(clipIssue);
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
  const read = readRegularFile(file, { maxBytes: MAX_POLICY_BYTES });
  if (!read.ok) {
    const expected = read.failure === 'missing' ? 'a policy file (YAML or JSON)' : read.expected;
    return reject([{ path: '', expected, found: read.found, message: `expected ${expected}, found ${read.found}` }]);
  }
  const decoded = decodeUtf8(read.bytes);
  if (!decoded.ok) return reject([{ path: '', expected: 'UTF-8 text', found: decoded.found, message: `expected UTF-8 text, found ${decoded.found}` }]);
  const source = parseManifestSource(decoded.text, { json: file.endsWith('.json') });
  if (source.errors.length > 0) {
    reject(source.errors.map((e) => ({ path: e.path, line: e.line, column: e.column, expected: e.expected, found: e.found, message: e.message })));
  }
  const data = source.value;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    const found = show(data);
    reject([{ path: '', ...(source.locate('') ?? { line: 1, column: 1 }), expected: 'a mapping of policy fields', found, message: `expected a mapping of policy fields, found ${found}` }]);
  }

  const issues = validateAgainstPolicySchema(data);
  const raw = data as {
    signatures: { required: boolean; trustedKeys: string[] };
    capabilities?: CapabilityRules;
    hosts?: string[];
    topics?: TopicRules;
    isolation?: IsolationRules;
    monitoring?: MonitoringPolicy;
    startupBoost?: StartupBoostPolicy;
    hostPaths: { path: string; permissions: FsPermission[]; plugins?: string[] }[];
    plugins: Record<string, PluginOverride>;
  };
  const hostPaths: HostPathRule[] = [];
  const trustedKeys: TrustedKey[] = [];
  if (issues.length === 0) {
    raw.signatures.trustedKeys.forEach((entry, i) => {
      const at = `/signatures/trustedKeys/${i}`;
      const inline = entry.trimStart().startsWith('-----BEGIN');
      const keyFile = inline ? undefined : path.resolve(path.dirname(file), entry);
      let pem = entry;
      if (keyFile) {
        const key = readRegularFile(keyFile, { maxBytes: MAX_KEY_FILE_BYTES });
        if (!key.ok) {
          const found = `${keyFile}: ${key.found}`;
          issues.push({ path: at, expected: 'a readable .pub file (paths are relative to the policy file) or inline PEM', found, message: `expected a readable .pub file, found ${found}` });
          return;
        }
        pem = key.bytes.toString('utf8');
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
    raw.hostPaths.forEach((entry, i) => {
      const at = `/hostPaths/${i}/path`;
      if (!path.isAbsolute(entry.path)) {
        issues.push({ path: at, expected: 'an absolute host path', found: JSON.stringify(entry.path), message: `expected an absolute host path, found ${JSON.stringify(entry.path)}` });
        return;
      }
      let real: string;
      try {
        real = realpathSync(entry.path);
      } catch (err) {
        const found = `${entry.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        issues.push({ path: at, expected: 'an existing host folder or file', found, message: `expected an existing host folder or file, found ${found}` });
        return;
      }
      hostPaths.push(
        Object.freeze({
          path: real,
          declared: entry.path,
          permissions: Object.freeze([...entry.permissions]),
          ...(entry.plugins ? { plugins: Object.freeze([...entry.plugins]) } : {}),
          at: `/hostPaths/${i}`,
        }),
      );
    });
    const denied = deniedSyscalls();
    const checkSyscalls = (c: CapabilityRules | undefined, at: string) =>
      c?.allowedSyscalls?.forEach((name, j) => {
        if (denied.includes(name)) return;
        const expected = `a system call LogoMesh's seccomp profile denies (${denied.join(', ')})`;
        issues.push({ path: `${at}/allowedSyscalls/${j}`, expected, found: JSON.stringify(name), message: `expected ${expected}, found ${JSON.stringify(name)}` });
      });
    checkSyscalls(raw.capabilities, '/capabilities');
    for (const [id, o] of Object.entries(raw.plugins)) checkSyscalls(o.capabilities, `/plugins/${id}/capabilities`);
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
    const located = issues.slice(0, MAX_ISSUES).map((i) => ({ ...source.locate(i.path), ...i }));
    located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    if (issues.length > MAX_ISSUES) {
      const more = `${issues.length - MAX_ISSUES} more issue(s) like these`;
      located.push({ path: '', expected: 'a policy with fewer problems', found: more, message: more });
    }
    reject(located);
  }
  const rules = (c?: CapabilityRules): CapabilityRules =>
    Object.freeze({
      ...c,
      ...(c?.allowedScopes ? { allowedScopes: Object.freeze([...c.allowedScopes]) } : {}),
      ...(c?.allowedSyscalls ? { allowedSyscalls: Object.freeze([...c.allowedSyscalls]) } : {}),
    });
  const plugins: Record<string, PluginOverride> = {};
  for (const [id, o] of Object.entries(raw.plugins)) {
    plugins[id] = Object.freeze({
      ...(o.capabilities ? { capabilities: rules(o.capabilities) } : {}),
      ...(o.hosts ? { hosts: Object.freeze([...o.hosts]) } : {}),
      ...(o.topics ? { topics: topicRules(o.topics) } : {}),
      ...(o.isolation ? { isolation: Object.freeze({ ...o.isolation }) } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.monitoring ? { monitoring: deepFreeze(o.monitoring) } : {}),
      ...(o.startupBoost ? { startupBoost: Object.freeze({ ...o.startupBoost }) } : {}),
    });
  }
  return Object.freeze({
    file,
    signatures: Object.freeze({ required: raw.signatures.required, trustedKeys: Object.freeze(trustedKeys) }),
    capabilities: rules(raw.capabilities),
    ...(raw.hosts ? { hosts: Object.freeze([...raw.hosts]) } : {}),
    ...(raw.topics ? { topics: topicRules(raw.topics) } : {}),
    ...(raw.isolation ? { isolation: Object.freeze({ ...raw.isolation }) } : {}),
    ...(raw.monitoring ? { monitoring: deepFreeze(raw.monitoring) } : {}),
    ...(raw.startupBoost ? { startupBoost: Object.freeze({ ...raw.startupBoost }) } : {}),
    hostPaths: Object.freeze(hostPaths),
    plugins: Object.freeze(plugins),
  });
}

/** The policy's monitoring section is plain data from the parser: frozen in place. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function topicRules(t: TopicRules): TopicRules {
  return Object.freeze({ ...(t.publish ? { publish: Object.freeze([...t.publish]) } : {}), ...(t.subscribe ? { subscribe: Object.freeze([...t.subscribe]) } : {}) });
}

let compiled: ValidateFunction | undefined;

/** Validate (and fill defaults into) `data` in place. */
function validateAgainstPolicySchema(data: unknown): Issue[] {
  compiled ??= schemaValidator('policy', schema, { allErrors: true, useDefaults: true, verbose: true, strict: true }, CACHE_DIR);
  if (compiled(data)) return [];
  return (compiled.errors ?? []).map(describe);
}

function describe(err: ErrorObject): Issue {
  const { path, expected, found } = describeSchemaError(err);
  return { path, expected, found, message: `expected ${expected}, found ${found}` };
}
