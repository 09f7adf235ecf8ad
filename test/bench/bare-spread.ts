/**
 * The spread row's bare baseline: containers of the plugins' own runtime images, each
 * running the smallest echo its runtime has (python3's standard library, `node` alone: no
 * LogoMesh SDK, no hub), listening on a Unix socket in a host folder bind-mounted into it,
 * as a plugin's hub socket is. The benchmark process connects to each socket and sends one
 * newline-ended message a call; the echo writes it back. What this costs beside the hub's
 * calls is what the product adds; what it costs alone is what the host gives any container.
 */
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ContainerCreateOptions } from 'dockerode';
import { removeByLabel } from '../../src/engine/cleanup.js';
import type { Docker } from '../../src/engine/docker.js';
import { ownerLabels } from '../../src/labels.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { CPU_PERIOD_US, cpuQuotaUs, cpuShares } from '../../src/sandbox/container-spec.js';
import { seccompProfile, seccompSecurityOpt } from '../../src/seccomp/profiles.js';

/** Where the echo's socket folder is mounted in its container. */
const MOUNT = '/run/bare';
const SOCKET = `${MOUNT}/echo.sock`;
const MB = 1024 * 1024;
/** Containers created and started at once: the controller's startConcurrency. */
const AT_ONCE = 16;

/** One line in, the same line out; a socket file the owner alone may use, as the hub's. */
const PYTHON_ECHO = `
import os, socket
os.umask(0o077)
s = socket.socket(socket.AF_UNIX)
s.bind(${JSON.stringify(SOCKET)})
s.listen(1)
while True:
    c, _ = s.accept()
    for line in c.makefile('rb'):
        c.sendall(line)
    c.close()
`;
const NODE_ECHO = `process.umask(0o077); require('node:net').createServer((c) => c.pipe(c)).listen(${JSON.stringify(SOCKET)});`;

export type BareKind = 'python' | 'node';

/**
 * The hardening of a scale plugin of the same runtime (container-spec.ts with the echo
 * fixtures' resources at 25% of a core), with the echo's own folder writable for its socket.
 */
function bareSpec(kind: BareKind, dir: string, uid: number, gid: number, instance: string): ContainerCreateOptions {
  const memory = (kind === 'python' ? 64 : 128) * MB;
  return {
    Image: `logomesh/runtime-${kind}:latest`,
    Cmd: kind === 'python' ? ['python3', '-u', '-B', '-c', PYTHON_ECHO] : ['node', '-e', NODE_ECHO],
    Env: ['HOME=/tmp'],
    User: `${uid}:${gid}`,
    WorkingDir: '/tmp',
    Labels: ownerLabels('test', instance),
    NetworkDisabled: true,
    HostConfig: {
      Memory: memory,
      MemorySwap: memory,
      CpuPeriod: CPU_PERIOD_US,
      CpuQuota: cpuQuotaUs(25),
      CpuShares: cpuShares(25),
      PidsLimit: 64,
      Ulimits: [{ Name: 'nofile', Soft: 256, Hard: 256 }],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=16m,mode=1777' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true', seccompSecurityOpt(seccompProfile('no-network'))],
      NetworkMode: 'none',
      IpcMode: 'private',
      Mounts: [{ Type: 'bind', Source: dir, Target: MOUNT, ReadOnly: false }],
      Init: true,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  };
}

/** One bare echo, connected: a call is one line written, its answer the next line read. */
export class BareEcho {
  /** The done callbacks of the calls sent and not answered, oldest first. */
  private readonly waiting: ((ok: boolean) => void)[] = [];

  constructor(
    readonly kind: BareKind,
    readonly pid: number,
    private readonly socket: net.Socket,
  ) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      // Every newline is one answer: the echo answers in order.
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) this.waiting.shift()?.(true);
    });
    socket.on('close', () => {
      for (const done of this.waiting.splice(0)) done(false);
    });
    socket.on('error', () => undefined);
  }

  send(line: string, done: (ok: boolean) => void): void {
    this.waiting.push(done);
    this.socket.write(line);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The bare echoes and their removal (containers by their label, the socket folders). */
export interface BareEchoes {
  readonly echoes: readonly BareEcho[];
  close(): Promise<void>;
}

async function connectWhenListening(file: string, deadline: number): Promise<net.Socket> {
  for (;;) {
    if (existsSync(file)) {
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(file, () => resolve(s));
          s.once('error', reject);
        });
      } catch (err) {
        // Bound but not yet listening: python binds, then listens.
        if (Date.now() > deadline) throw err;
      }
    }
    if (Date.now() > deadline) throw new Error(`bare echo: ${file} did not appear`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Start n bare echoes, half Python and half Node.js, AT_ONCE at a time, and connect to each.
 * On any failure what was started is removed before the error is thrown.
 */
export async function startBareEchoes(docker: Docker, instance: string, n: number): Promise<BareEchoes> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lm-bench-bare-'));
  const echoes: BareEcho[] = [];
  const close = async (): Promise<void> => {
    for (const e of echoes) e.close();
    await removeByLabel(docker, instance);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 120_000;
    let next = 0;
    const one = async (i: number): Promise<BareEcho> => {
      const kind: BareKind = i % 2 === 0 ? 'python' : 'node';
      const dir = path.join(root, String(i));
      // Each echo its own user, as each plugin is: derived the same way, from an id of its own.
      const uid = pluginUid(instance, `bare-${i}`);
      const gid = pluginGid(instance, `bare-${i}`);
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, uid, gid);
      const container = await docker.createContainer(bareSpec(kind, dir, uid, gid, instance));
      await container.start();
      const socket = await connectWhenListening(path.join(dir, 'echo.sock'), deadline);
      const pid = (await container.inspect()).State.Pid;
      return new BareEcho(kind, pid, socket);
    };
    const slots = new Array<BareEcho | undefined>(n);
    let failed = false;
    // Settled, not raced: a failure stops the workers, and the removal waits for them all.
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(AT_ONCE, n) }, async () => {
        while (next < n && !failed) {
          const i = next++;
          try {
            slots[i] = await one(i);
          } catch (err) {
            failed = true;
            throw err;
          }
          echoes.push(slots[i]!);
        }
      }),
    );
    const failure = workers.find((w) => w.status === 'rejected');
    if (failure) throw failure.reason;
    return { echoes: slots as BareEcho[], close };
  } catch (err) {
    await close();
    throw err;
  }
}
