import path from 'node:path';
import type { ManifestIssue } from '../errors.js';
import type { GrantedPath } from './types.js';
import { resolveInside, staticPart } from './paths.js';
import { deniedSyscalls } from '../seccomp/profiles.js';
import { isInside } from '../read-file.js';
import { schemaProblem } from './method-schemas.js';
import { checkProtobuf } from './protobuf.js';

type Issue = Omit<ManifestIssue, 'file'>;

interface Checked {
  issues: Issue[];
  grantedPaths: GrantedPath[];
}

/**
 * Checks JSON Schema cannot express: the entrypoint and capability paths against the real
 * plugin folder, and uniqueness of capability ids. Runs on data that may have failed the
 * schema, so every access is defensive and only well-typed fields are checked.
 */
export function checkSemantics(data: unknown, pluginDir: string, manifestFile: string): Checked {
  const issues: Issue[] = [];
  const grantedPaths: GrantedPath[] = [];
  if (!isObject(data)) return { issues, grantedPaths };

  if (typeof data.entrypoint === 'string' && data.entrypoint.length > 0) {
    checkEntrypoint(data.entrypoint, pluginDir, issues);
  }

  // Only a system call LogoMesh's seccomp profile denies can be asked for: the others are
  // either allowed already or denied by the engine's own allowlist for good.
  const security = isObject(data.security) ? data.security : {};
  if (Array.isArray(security.syscalls)) {
    const denied = deniedSyscalls();
    security.syscalls.forEach((name, j) => {
      if (typeof name === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(name) && !denied.includes(name)) {
        issues.push(issue('LM_MANIFEST_INVALID', `/security/syscalls/${j}`, `a system call LogoMesh's seccomp profile denies (${denied.join(', ')})`, JSON.stringify(name)));
      }
    });
  }

  // Publishing needs the messaging switch; a list of topics alone would look like permission.
  const coordination = isObject(data.coordination) ? data.coordination : {};
  if (Array.isArray(coordination.publishes) && coordination.publishes.length > 0 && coordination.messaging !== true) {
    issues.push(issue('LM_MANIFEST_INVALID', '/coordination/messaging', 'true when coordination.publishes lists topics (publishing is messaging)', JSON.stringify(coordination.messaging ?? false)));
  }

  // A schema for a method the plugin does not expose would never be used; one that does not compile would fail every call.
  const exposed = Array.isArray(coordination.exposesMethods) ? coordination.exposesMethods : [];
  if (isObject(coordination.methodSchemas)) {
    for (const [method, s] of Object.entries(coordination.methodSchemas)) {
      if (!exposed.includes(method)) issues.push(issue('LM_MANIFEST_INVALID', `/coordination/methodSchemas/${method}`, 'a method listed under coordination.exposesMethods', JSON.stringify(method)));
      if (!isObject(s)) continue;
      for (const part of ['params', 'result'] as const) {
        const problem = s[part] === undefined ? undefined : schemaProblem(s[part]);
        if (problem) issues.push(issue('LM_MANIFEST_INVALID', `/coordination/methodSchemas/${method}/${part}`, 'a JSON Schema ajv compiles', problem));
      }
    }
  }

  issues.push(...checkProtobuf(coordination, pluginDir));

  const caps = Array.isArray(data.capabilities) ? data.capabilities : [];
  const seen = new Map<string, number>();
  caps.forEach((cap, i) => {
    if (!isObject(cap)) return;
    if (typeof cap.id === 'string') {
      const first = seen.get(cap.id);
      if (first !== undefined) {
        issues.push(issue('LM_MANIFEST_INVALID', `/capabilities/${i}/id`, 'capability ids to be unique', `"${cap.id}" again (first at /capabilities/${first}/id)`));
      } else seen.set(cap.id, i);
    }
    if (cap.scope === 'network' && Array.isArray(cap.hosts)) {
      // The egress proxy matches host and port exactly: a host without a port matches nothing.
      cap.hosts.forEach((h, j) => {
        if (typeof h === 'string' && !/:\d+$/.test(h)) {
          issues.push(issue('LM_MANIFEST_INVALID', `/capabilities/${i}/hosts/${j}`, "a host with its port, such as 'api.example.com:443'", JSON.stringify(h)));
        }
      });
      const limit = isObject(data.resources) ? data.resources.maxNetworkConnections : undefined;
      if (limit === undefined || limit === 0) {
        issues.push(issue('LM_MANIFEST_LIMIT', '/resources/maxNetworkConnections', 'at least 1 when the plugin has a network capability (every connection is refused above it)', String(limit ?? 0)));
      }
    }
    if (cap.scope !== 'filesystem' || !Array.isArray(cap.paths)) return;
    const writable = Array.isArray(cap.permissions) && cap.permissions.includes('write');
    cap.paths.forEach((p, j) => {
      if (typeof p !== 'string' || p.length === 0) return;
      const at = `/capabilities/${i}/paths/${j}`;
      const stat = staticPart(p);
      if (!stat.ok) return void issues.push(issue('LM_MANIFEST_PATH', at, stat.expected, stat.found));
      const r = resolveInside(pluginDir, stat.value);
      if (!r.ok) return void issues.push(issue('LM_MANIFEST_PATH', at, r.expected, r.found));
      // A plugin that could rewrite its own manifest could grant itself more on next load.
      if (writable && (r.real === pluginDir || isInside(manifestFile, r.real))) {
        return void issues.push(
          issue('LM_MANIFEST_PATH', at, 'a write grant that does not cover the manifest file', `${JSON.stringify(p)} covers ${path.basename(manifestFile)}`),
        );
      }
      grantedPaths.push({ capability: String(cap.id), hostPath: r.real, relative: r.relative, writable });
    });
  });
  return { issues, grantedPaths };
}

function checkEntrypoint(entry: string, pluginDir: string, issues: Issue[]): void {
  const r = resolveInside(pluginDir, entry);
  if (!r.ok) {
    issues.push(issue('LM_MANIFEST_ENTRYPOINT', '/entrypoint', r.expected.replace('an existing file or folder', 'an existing file'), r.found));
  } else if (!r.isFile) {
    issues.push(issue('LM_MANIFEST_ENTRYPOINT', '/entrypoint', 'a regular file', `${r.kind} at ${JSON.stringify(entry)}`));
  }
}

function issue(code: Issue['code'], p: string, expected: string, found: string): Issue {
  return { code, path: p, expected, found, message: `expected ${expected}, found ${found}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
