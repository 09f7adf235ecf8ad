/**
 * Every error LogoMesh reports carries one of these codes. The same codes appear in CLI
 * output, in `--json` output and (later) on the hub's wire; each one is documented in
 * docs/errors.md, and a test keeps the two lists equal.
 */
export const ERROR_CODES = {
  LM_USAGE: 'The command line was not understood.',
  LM_INTERNAL: "LogoMesh failed in a way it has no code for (a bug); the message carries the original error. Reported so that one bad input never hides the results for the others; on the hub's message path, the sender's connection is closed and nothing else is affected.",
  LM_MANIFEST_NOT_FOUND: 'No manifest file at the given path, or not exactly one of plugin.yaml / plugin.yml / plugin.json in the folder.',
  LM_MANIFEST_FILE: 'The manifest cannot be read as a manifest file: it is not a regular file (a folder, FIFO, socket or device), is a symlink leaving the plugin folder, cannot be opened or read, was replaced while being read, or has a second name (a hard link).',
  LM_MANIFEST_PARSE: 'The manifest is not well-formed YAML or JSON (syntax error, duplicate key, a YAML feature outside the accepted set, not UTF-8, over 256 KiB, not a mapping).',
  LM_MANIFEST_INVALID: 'The manifest does not match schema v2 (missing field, wrong type, unknown field, bad pattern).',
  LM_MANIFEST_LIMIT: 'A resource limit is outside the bounds LogoMesh accepts.',
  LM_MANIFEST_PATH: 'A path in the manifest leaves the plugin folder (.., absolute path, symlink) or does not exist.',
  LM_MANIFEST_ENTRYPOINT: 'The entrypoint is missing, not a regular file, or outside the plugin folder.',
  LM_PATH_NOT_WRITABLE: "A write grant names a folder the plugin's user cannot write on the host.",
  LM_RUNTIME_UNAVAILABLE: 'The manifest names a runtime whose image this version cannot build yet.',
  LM_ENGINE_UNAVAILABLE: 'No Docker engine answers.',
  LM_ENGINE_ERROR: 'The Docker engine refused or failed a request.',
  LM_IMAGE_BUILD: 'Building a runtime image failed.',
  LM_RESOURCE_MEMORY: 'The plugin exceeded its memory limit and the kernel killed it (also the answer to calls that were waiting on it).',
  LM_RESOURCE_VIOLATION: "A code in the audit trail, the log and hub events: the resource monitor saw a plugin hit a kernel limit (OOM kill, processes, /tmp, file handles, connections) or cross one of its monitoring alerts (memory, CPU throttling, pressure).",
  LM_RESOURCE_EXCEEDED: "A plugin broke one of its monitoring.killOnExceed rules (memory above a share of its limit for too long, CPU throttled or stalled beyond a share of a window) and the monitor killed it; its restart policy applies.",
  LM_MONITOR_UNAVAILABLE: "The resource monitor cannot watch a plugin: its container's cgroups are not visible here, the cgwatch helper cannot be built or started, or a kernel notification cannot be set up (the monitor falls back to reading the files where it can).",
  LM_BOOST_FAILED: "The engine refused, again and again, to lower a plugin container's CPU quota from its start-up boost to the declared one: the container is stopped rather than left boosted (audited).",
  LM_LIMIT_INVALID: "A live limit change (enforceLimit) names an unknown resource, a value outside the manifest's bounds, or a container that is not running.",
  LM_CONSOLE_ENDPOINT: "The operator's console cannot start: a bad LOGOMESH_CONSOLE port or address, a non-loopback address without LOGOMESH_CONSOLE_PUBLIC=1, a bad console token, or the address is in use.",
  LM_CONSOLE_AUTH: "A console request without a valid session (no cookie, an unknown or expired one), or a login with a wrong token or a bad operator name.",
  LM_CONSOLE_FORBIDDEN: "A console action was refused: the session is read-only, or the request failed the cross-site checks (its Origin is not the console's, or the CSRF header is missing or wrong).",
  LM_METRICS_ENDPOINT: "The Prometheus metrics endpoint cannot start: a bad port or address, a non-loopback address without LOGOMESH_METRICS_PUBLIC=1, or the address is in use.",
  LM_SANDBOX_DENIED: 'An audit-trail code: the kernel refused a plugin process inside its sandbox (a read-only place, a full /tmp, a file-handle or process limit, noexec, an identity change), as LogoMesh\'s kernel audit rules report it.',
  LM_SECCOMP_VIOLATION: 'A plugin process made a system call only an attack makes; the kernel killed it, and the plugin is stopped, not restarted.',
  LM_INTERRUPTED: 'The run was stopped by SIGINT or SIGTERM, or its output was closed (EPIPE); its container was removed.',
  LM_PROTOCOL: 'A hub frame was malformed: not JSON, not an object, a missing or wrong field, or a message out of order.',
  LM_MESSAGE_TOO_LARGE: "A hub message was larger than the hub's maximum message size.",
  LM_PERMISSION_DENIED: 'The manifest does not allow this: an undeclared method call, an unexposed method, messaging without coordination.messaging, a topic coordination.publishes or .subscribes does not cover, or an operator grant or revocation naming a method, topic or host the manifest does not list.',
  LM_RATE_LIMITED: 'A plugin sent messages faster than its rate limit, or had too many calls in flight; or the console refused a login (too many failed ones in a minute) or a live stream (too many open).',
  LM_BACKPRESSURE: 'A hub client or plugin did not read what the hub sent it: its unsent messages passed the limit (maxQueuedBytes), so the hub closed its connection instead of holding more. Events to a slow reader are dropped first.',
  LM_HUB_LIMIT: 'A hub client asked for more than the hub holds for one connection: too many subscriptions, or one host client too many connected at once.',
  LM_AUDIT_TAMPERED: 'The audit trail hash chain is broken: a line was removed or edited.',
  LM_UNAUTHORIZED: "A host client connected to the hub without a valid token, or a plugin reaching the hub over TCP (across nodes) did not prove it holds its own key: a malformed, stale or replayed handshake, an unknown plugin, or a bad signature.",
  LM_TIMEOUT: 'A call got no response within its timeout.',
  LM_PLUGIN_UNAVAILABLE: 'The target plugin is not running or not connected to the hub.',
  LM_PLUGIN_EXITED: 'The plugin exited or disconnected while a call to it was open, or before it became ready.',
  LM_PLUGIN_ERROR: 'A plugin method failed with an error that carried no code of its own.',
  LM_METHOD_NOT_FOUND: 'The plugin or host does not serve the method that was called.',
  LM_INVALID_ARGUMENT: 'A method was called with arguments it does not accept.',
  LM_PLUGIN_NOT_FOUND: 'No plugin with that id is loaded.',
  LM_PLUGIN_CONFLICT: 'Two plugin folders declare the same plugin id.',
  LM_DEPENDENCY: 'A plugin dependency is missing, failed to start, or the dependencies form a cycle.',
  LM_UNHEALTHY: 'A running plugin did not answer its health check in time; the controller restarts it if its restart policy allows.',
  LM_RESTART_LIMIT: 'A plugin kept failing and reached restart.maxRetries; it stays failed until started by hand.',
  LM_START_TIMEOUT: 'A plugin did not connect to the hub and say hello before its start deadline.',
  LM_CONTROLLER_UNAVAILABLE: 'No LogoMesh controller answers on the control socket (CLI), or the hub cannot be reached (SDKs).',
  LM_CONTROLLER_RUNNING: 'A controller is already running with the same home folder.',
  LM_PACKAGES_UNSUPPORTED: "dependencies.packages lists what the plugin's runtime cannot install: packages for Go or Rust (they vendor their code), another runtime's list, or a spec that is not a plain registry package.",
  LM_SCAFFOLD_NAME: 'The name given to logomesh create is not a valid plugin id.',
  LM_SCAFFOLD_EXISTS: 'The folder logomesh create was asked to write exists and is not empty.',
  LM_TEST_FAILED: "A plugin's own tests failed (or could not run) under logomesh test.",
  LM_SECCOMP_PROFILE: "LogoMesh's seccomp profile (images/seccomp/) is missing or damaged, or a profile other than JSON text was given.",
  LM_POLICY_INVALID: 'The operator policy file (--policy or LOGOMESH_POLICY) is missing, not well-formed, does not match its schema, or lists a trusted key that is not an ed25519 public key.',
  LM_SIGNATURE: 'A plugin was refused at load: unsigned under a policy that requires signatures, files changed since signing, signed by a key the policy does not trust, or a bad or malformed plugin.sig.',
  LM_EGRESS: 'The egress proxy or a plugin\'s own network could not be set up (image build, network, proxy start), so a plugin with network capabilities was not started.',
  LM_EGRESS_ISOLATION: "A plugin's own network would have given it a route to the host: the engine put a host address on the network's bridge although it was created without one (com.docker.network.bridge.inhibit_ipv4), so the plugin was not started.",
  LM_EGRESS_DENIED: "The egress proxy refused a plugin's connection: host:port not in its network capabilities, over resources.maxNetworkConnections, a forbidden address, or not an HTTP or CONNECT request. Recorded in the audit trail.",
  LM_POLICY_DENIED: "The operator policy refuses this: a manifest asks for a capability scope, a resource above a ceiling or a host the policy does not allow, or an operator grant names a host path the policy's hostPaths do not cover.",
  LM_GRANT_PATH: "An operator path grant cannot be used: the host path does not exist, is inside the plugin folder or the controller's home, has a bad name, or its real path changed between the grant and the container's creation (a symlink swapped).",
  LM_PATH_CHANGED: "A host path a plugin container mounts (its folder, a path its manifest grants) no longer resolves as it did when checked: a symlink or another kind of file on the way, or another file or folder in its place; the container is not created.",
  LM_SIGNING: 'logomesh keygen or sign could not do its work: a key file already exists, the key is not an ed25519 private key or others can read it, or the plugin folder holds a file that cannot be signed.',
  LM_RUNTIME_ISOLATION: "A plugin needs an OCI runtime (the policy's isolation.runtime, or runsc for a manifest asking for isolation level 3) that the Docker engine does not have; the message lists the runtimes it has.",
  LM_MEMORY_QUOTA: "A shared-memory allocation or resize would pass the plugin's quota (its resources.maxMemoryMB, at most the pool's per-plugin limit) or the pool's total size; nothing was allocated.",
  LM_MEMORY_POOL: "The shared-memory pool cannot be set up or changed: the tmpfs cannot be mounted or resized (the controller is not root, or lacks CAP_SYS_ADMIN), a controller in a container would mount it where the engine cannot see it (its home not bound rshared), setfacl is missing, or a segment file cannot be made.",
  LM_SEGMENT: "A shared-memory request names no segment of the pool (a bad or unknown handle, one already freed), a size outside 1 byte to the pool's limit, or asks what only the segment's owner may do.",
  LM_SCHEMA: "A call's params or a method's result do not match the JSON Schema the target's manifest declares for the method (coordination.methodSchemas); the message names the method, the JSON path, what was expected and what was found. The target never sees a refused call.",
  LM_KUBE_CONFIG: "The Kubernetes backend has no cluster to talk to: no kubeconfig in KUBECONFIG or ~/.kube/config and not running in a Pod, a kubeconfig that cannot be read, no namespace, or an option it does not take.",
  LM_KUBE_API: 'The Kubernetes API server refused or failed a request of the Kubernetes backend (or did not answer); the message names the operation, the object, the HTTP status and what the server said.',
  LM_KUBE_RENDER: 'logomesh kube render cannot render this for Kubernetes: an option is not a valid namespace, architecture, registry or Pod network, a plugin id is too long for Kubernetes object names, the manifests pass what one ConfigMap holds, no image was named for a plugin, or a plugin folder holds a special file that cannot go into an image.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface Location {
  /** File the error is about, when there is one. */
  file?: string;
  /** JSON pointer into that file (`/resources/maxMemoryMB`), when the error is about a field. */
  path?: string;
  /** 1-based line and column of `path` in the file, when known. */
  line?: number;
  column?: number;
  /** What was expected and what was found, in words a person can act on. */
  expected?: string;
  found?: string;
}

export type ErrorDetails = Location & Record<string, unknown>;

/** The base of every LogoMesh error: a literal `code`, structured `details`, and `cause`. */
export class LogoMeshError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LogoMeshError';
    this.code = code;
    this.details = details;
  }

  /** The `{code, message, details}` shape used in `--json` output and on the wire. */
  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** One problem found in a manifest. A manifest can have many; all are reported together. */
export interface ManifestIssue extends Location {
  code: ErrorCode;
  message: string;
  file: string;
  path: string;
}

/** A manifest was rejected. It is accepted whole or not at all, so this lists every issue. */
export class ManifestRejectedError extends LogoMeshError {
  readonly issues: readonly ManifestIssue[];

  constructor(file: string, all: ManifestIssue[]) {
    const issues = all.map(clipIssue);
    const first = issues[0];
    const code = first?.code ?? 'LM_MANIFEST_INVALID';
    const summary = issues.map(formatIssue).join('\n');
    super(code, `${file}: manifest rejected with ${issues.length} error(s)\n${summary}`, { file, issues });
    this.name = 'ManifestRejectedError';
    this.issues = Object.freeze([...issues]);
  }
}

/** Issues located and reported for one file; beyond this, one more line says how many were left out. */
export const MAX_ISSUES = 100;

/** Longest text an issue shows of anything the file itself supplies (a key, a tag, a value). */
const MAX_SHOWN = 240;
/** Longest message, whatever it quotes; LogoMesh's own longest (a list of system calls) is far shorter. */
const MAX_MESSAGE = 4096;

function clip(text: string, max = MAX_SHOWN): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * An issue whose texts fit on a screen: a hostile file can make a key, an anchor or a tag
 * 256 KiB long, and every `found`, pointer and message quoting it would be as long. What
 * LogoMesh says itself (`expected`) is left whole.
 */
export function clipIssue<T extends ManifestIssue>(issue: T): T {
  let { message, path, found } = issue;
  if (found !== undefined && found.length > MAX_SHOWN) {
    message = message.split(found).join(clip(found));
    found = clip(found);
  }
  if (path.length > MAX_SHOWN) {
    message = message.split(path).join(clip(path));
    path = clip(path);
  }
  return { ...issue, path, message: clip(message, MAX_MESSAGE), ...(found !== undefined ? { found } : {}) };
}

/** `file:line:col CODE /path: message` — the one-line form editors and people can both read. */
export function formatIssue(issue: ManifestIssue): string {
  const where = issue.line ? `${issue.file}:${issue.line}:${issue.column ?? 1}` : issue.file;
  return `${where} ${issue.code} ${issue.path || '/'}: ${issue.message}`;
}

export function isLogoMeshError(err: unknown): err is LogoMeshError {
  return err instanceof LogoMeshError;
}
