import { connectEngine, instanceId, loadManifest, LogoMeshError, removeRunOrphans, runPluginTests, runtimeImage, type Logger } from '../index.js';
import type { CliIo } from './io.js';
import { abortOnSignals, SIGNAL_EXIT } from './signals.js';


/**
 * `logomesh test <plugin-dir> [-- args]`: run the plugin's own tests in a container of its
 * runtime's image (the builder for Go and Rust), with the folder mounted read-only, no
 * network and a non-root user. The exit code is the tests' exit code.
 */
export async function testCommand(target: string, args: readonly string[], io: CliIo, log: Logger): Promise<number> {
  const loaded = loadManifest(target);
  const { id, runtime } = loaded.manifest;
  runtimeImage(runtime);
  const docker = await connectEngine();
  await removeRunOrphans(docker, log);
  using abort = abortOnSignals();
  io.err(`logomesh test: ${id} (${runtime}) in ${loaded.pluginDir}`);
  const result = await runPluginTests({
    docker,
    loaded,
    instance: instanceId(),
    stdout: io.stdout,
    stderr: io.stderr,
    log,
    args,
    signal: abort.signal,
    progress: io.stderr,
  });
  if (result.interrupted) {
    const err = new LogoMeshError('LM_INTERRUPTED', `the tests of ${id} were stopped by ${abort.received ?? 'a signal'}; their container was removed`, { plugin: id });
    io.err(`${err.code}: ${err.message}`);
    return SIGNAL_EXIT[abort.received ?? 'SIGINT'] ?? 130;
  }
  const command = result.recipe.command.join(' ');
  const secs = (result.ms / 1000).toFixed(1);
  if (result.oomKilled) {
    io.err(`LM_TEST_FAILED: the tests of ${id} went over ${result.recipe.memoryMB} MB and were killed (${command} in ${result.recipe.image})`);
    return result.exitCode || 137;
  }
  if (result.exitCode !== 0) {
    io.err(`LM_TEST_FAILED: the tests of ${id} failed with exit code ${result.exitCode} after ${secs} s (${command} in ${result.recipe.image}); their output is above`);
    return result.exitCode;
  }
  io.err(`logomesh test: ${id} passed in ${secs} s`);
  return 0;
}
