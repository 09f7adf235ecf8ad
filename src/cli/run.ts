import {
  connectEngine,
  enforcePolicy,
  EXIT_SIGSYS,
  followSeccompKills,
  instanceId,
  loadManifest,
  LogoMeshError,
  removeRunOrphans,
  removeStagingLeftovers,
  resolvePolicy,
  runPlugin,
  runtimeImage,
  signedContentOf,
  verifyPlugin,
  type Docker,
  type LoadedManifest,
  type Logger,
  type Policy,
  type SeccompKills,
  type SignedContent,
} from '../run-api.js';
import type { CliIo } from './io.js';
import { abortOnClosedOutput, abortOnSignals, EXIT_PIPE, SIGNAL_EXIT, type OutputAbort, type SignalAbort } from './signals.js';

/** Exit status the shell gives a process killed by SIGKILL, which is what an OOM kill is. */
const EXIT_KILLED = 137;

/**
 * `logomesh run <plugin-dir>...`: run each plugin to completion in its sandbox, one after
 * another, streaming its output; the exit code is the first non-zero plugin exit code.
 * `policyFile` (--policy) overrides LOGOMESH_POLICY; every plugin is verified before any runs.
 * `client`: the engine client to connect with (default: the library's, DOCKER_HOST or the socket).
 */
export async function runCommand(targets: string[], io: CliIo, log: Logger, policyFile?: string, client?: Docker): Promise<number> {
  const policy = resolvePolicy(policyFile);
  const loaded = targets.map((t) => loadManifest(t)); // all or nothing: validate every one first
  // Throws LM_SIGNATURE. What each signature vouches for goes with the plugin to its build.
  const signed = new Map(loaded.map((l) => [l, signedContentOf(verifyPlugin(l, policy))] as const));
  for (const l of loaded) log.debug({ plugin: l.manifest.id, signed: signed.get(l) !== undefined }, 'signature checked');
  for (const l of loaded) enforcePolicy(l, policy); // throws LM_POLICY_DENIED
  for (const l of loaded) runtimeImage(l.manifest.runtime); // and know how to run every one
  const docker = await connectEngine(client);
  // What killed runs left is removed while this one runs: only containers and staging folders
  // of processes that no longer exist, never this run's (its pid is alive). A failure still
  // fails the command once the run is over, unless a signal or a closed output ended it
  // (their exit codes stay).
  const leftovers = settled(Promise.all([removeRunOrphans(docker, log), removeStagingLeftovers(log)]));
  const instance = instanceId();
  using abort = abortOnSignals();
  using output = abortOnClosedOutput(io);
  // A plugin killed for a forbidden system call is named with that call, from the kernel log.
  const seccomp = followSeccompKills({ log, instance, plugins: loaded.map((l) => l.manifest.id) });
  try {
    const status = await runEach(loaded, { docker, instance, io, log, abort, output, seccomp, policy, signed });
    const failed = await leftovers;
    if (failed && !abort.received && !output.closed) throw failed.err;
    return status;
  } finally {
    seccomp.close();
    await leftovers; // never rejects: nothing of the cleanup goes on after the command
  }
}

/** A promise's failure held as a value, so that it is not an unhandled rejection while the run goes on. */
async function settled(p: Promise<unknown>): Promise<{ err: unknown } | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return { err };
  }
}

async function runEach(
  loaded: LoadedManifest[],
  ctx: { docker: Docker; instance: string; io: CliIo; log: Logger; abort: SignalAbort; output: OutputAbort; seccomp: SeccompKills; policy: Policy; signed: ReadonlyMap<LoadedManifest, SignedContent | undefined> },
): Promise<number> {
  const { docker, instance, io, log, abort, output, seccomp, policy } = ctx;
  const signal = AbortSignal.any([abort.signal, output.signal]);
  let status = 0;
  for (const l of loaded) {
    if (signal.aborted) break;
    const { id } = l.manifest;
    const startedAt = Date.now();
    const signed = ctx.signed.get(l);
    const result = await runPlugin({ docker, loaded: l, instance, stdout: io.stdout, stderr: io.stderr, log, signal, progress: io.stderr, policy, ...(signed ? { signed } : {}) });
    if (result.interrupted && !abort.received && output.closed) {
      // The reader of our output left (`| head -1`): end as a pipeline expects, SIGPIPE's status.
      io.err(`LM_INTERRUPTED: plugin ${id} was stopped because the command's ${output.closed} was closed (EPIPE: the reading end of the pipe went away); its container was removed`);
      return EXIT_PIPE;
    }
    if (result.interrupted) {
      const err = new LogoMeshError('LM_INTERRUPTED', `plugin ${id} was stopped by ${abort.received ?? 'a signal'}; its container was removed`, { plugin: id });
      io.err(`${err.code}: ${err.message}`);
      return SIGNAL_EXIT[abort.received ?? 'SIGINT'] ?? 130;
    }
    if (result.oomKilled) {
      const mb = l.manifest.resources.maxMemoryMB;
      io.err(`LM_RESOURCE_MEMORY: plugin ${id} exceeded its memory limit of ${mb} MB and was killed`);
      status ||= EXIT_KILLED;
      continue;
    }
    if (result.exitCode === EXIT_SIGSYS) io.err(`LM_SECCOMP_VIOLATION: ${await seccomp.explain(id, startedAt)}`);
    log.debug({ plugin: id, exitCode: result.exitCode, runMs: result.runMs }, 'plugin exited');
    status ||= result.exitCode;
  }
  return status;
}
