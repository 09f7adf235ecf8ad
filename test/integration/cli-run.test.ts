import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { labelFilter, LABEL } from '../../src/labels.js';
import { copyFixture, docker, instance, REPO, runCli, tempDir, type CliExit } from './support.js';

/** Run the real `logomesh` CLI (from source) as a child process. */
function logomesh(args: string[], opts: { env?: Record<string, string>; onStdout?: (text: string, child: ChildProcess) => void } = {}): Promise<CliExit> {
  return runCli(args, { ...(opts.env ? { env: opts.env } : {}), onOutput: (o, child) => opts.onStdout?.(o.stdout, child) });
}

async function containersOf(plugin: string): Promise<number> {
  const filters = labelFilter(instance());
  filters.label.push(`${LABEL.plugin}=${plugin}`);
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(filters) })).length;
}

describe('logomesh run', () => {
  it('streams stdout and stderr and exits with the plugin exit code', async () => {
    const r = await logomesh(['run', copyFixture('exits-three')]);
    expect(r.stdout).toContain('to stdout');
    expect(r.stderr).toContain('to stderr');
    expect(r.code).toBe(3);
    expect(await containersOf('exits-three')).toBe(0);
  });

  it('says plainly when the kernel killed the plugin for memory, and exits 137', async () => {
    const r = await logomesh(['run', copyFixture('memory-hog')]);
    expect(r.stderr).toContain('LM_RESOURCE_MEMORY: plugin memory-hog exceeded its memory limit of 32 MB and was killed');
    expect(r.code).toBe(137);
    expect(await containersOf('memory-hog')).toBe(0);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s removes the container and exits %i', async (signal, status) => {
    let sent = false;
    const r = await logomesh(['run', copyFixture('sleeper')], {
      onStdout: (text, child) => {
        if (!sent && text.includes('sleeper up')) {
          sent = true;
          child.kill(signal);
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(status);
    expect(r.stderr).toContain(`LM_INTERRUPTED: plugin sleeper was stopped by ${signal}`);
    expect(await containersOf('sleeper')).toBe(0);
  });

  it('a run killed with SIGKILL leaves a container that the next run removes', async () => {
    let pid = 0;
    const killed = await logomesh(['run', copyFixture('sleeper')], {
      env: { LOGOMESH_INSTANCE: '' }, // a real one-shot run: instance named after its pid
      onStdout: (text, child) => {
        if (!pid && text.includes('sleeper up')) {
          pid = child.pid ?? -1;
          child.kill('SIGKILL');
        }
      },
    });
    expect(killed.code).toBeNull();
    const d = await docker();
    const ofKilledRun = async () =>
      (await d.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.plugin}=sleeper`] }) })).filter((c) =>
        c.Labels[LABEL.instance]?.startsWith(`run-${pid}-`),
      );
    try {
      expect(await ofKilledRun()).toHaveLength(1);
      const next = await logomesh(['run', copyFixture('exits-three')]);
      expect(next.code).toBe(3);
      expect(await ofKilledRun()).toHaveLength(0);
    } finally {
      for (const c of await ofKilledRun()) await d.getContainer(c.Id).remove({ force: true });
    }
  });

  it('survives the reader of its output going away (| head -1): removes the container and exits 141, as SIGPIPE would', async () => {
    const dir = path.join(tempDir('lm-chatty-'), 'chatty');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'plugin.yaml'), 'id: chatty\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n');
    writeFileSync(path.join(dir, 'main.py'), 'import time\nwhile True:\n    print("line", flush=True)\n    time.sleep(0.05)\n');
    let closed = false;
    const r = await logomesh(['run', dir], {
      onStdout: (text, child) => {
        if (!closed && text.includes('line')) {
          closed = true;
          child.stdout?.destroy(); // what head -1 does once it has its line
        }
      },
    });
    expect(closed).toBe(true);
    expect(r.stderr).toContain('LM_INTERRUPTED: plugin chatty was stopped because the command\'s stdout was closed (EPIPE: the reading end of the pipe went away); its container was removed');
    expect(r.stderr).not.toMatch(/Unhandled|EPIPE.*\n\s+at /);
    expect(r.code).toBe(141);
    expect(await containersOf('chatty')).toBe(0);
  });

  it('refuses an invalid manifest before touching the engine', async () => {
    const r = await logomesh(['run', path.join(REPO, 'test/fixtures/plugins/does-not-exist')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^LM_MANIFEST_NOT_FOUND: .*does-not-exist: no such file or folder/m);
  });

  it('reports an engine that does not answer with LM_ENGINE_UNAVAILABLE and what to do', async () => {
    const r = await logomesh(['run', copyFixture('exits-three')], { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('LM_ENGINE_UNAVAILABLE: no Docker engine answers at unix:///nonexistent/docker.sock');
    expect(r.stderr).toContain('npm run provision');
  });
});
