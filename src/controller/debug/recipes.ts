import path from 'node:path';
import type { Manifest, Runtime } from '../../manifest/types.js';
import { IMAGES_DIR } from '../../paths.js';
import { PLUGIN_MOUNT, type ImageDef } from '../../runtimes/runtime.js';

/**
 * How each runtime runs under its debugger in `logomesh dev --debug`: the image (the
 * runtime's, or one with the debugger's Debian package), the command, the port the debugger
 * listens on inside the container (its loopback only: the container keeps network mode
 * none), the protocol an IDE speaks to it, and the program that carries one connection
 * from the controller to that port, run with `docker exec` in the container.
 */
export interface DebugRecipe {
  /** A debug image to build (FROM the runtime image); absent: the runtime's own image. */
  readonly image?: ImageDef;
  readonly port: number;
  readonly protocol: 'inspector' | 'dap';
  /** The debugger's command for the plugin, from the runtime's. */
  command(manifest: Manifest, runtimeCommand: readonly string[]): string[];
  /** Pipes its stdin and stdout to 127.0.0.1:port, in the container. */
  forwarder(port: number): string[];
  /** System calls the debugger needs beyond the plugin's (from LogoMesh's deny list). */
  readonly syscalls: readonly string[];
}

const NODE_FORWARDER = `const s=require('net').connect(+process.argv[1],'127.0.0.1');process.stdin.pipe(s);s.pipe(process.stdout);s.on('error',()=>process.exit(1));s.on('close',()=>process.exit(0));`;

const PYTHON_FORWARDER = [
  'import socket,sys,threading',
  's=socket.create_connection(("127.0.0.1",int(sys.argv[1])))',
  'def up():',
  ' while True:',
  '  b=sys.stdin.buffer.read1(65536)',
  '  if not b: break',
  '  s.sendall(b)',
  ' s.shutdown(socket.SHUT_WR)',
  'threading.Thread(target=up,daemon=True).start()',
  'while True:',
  ' b=s.recv(65536)',
  ' if not b: break',
  ' sys.stdout.buffer.write(b);sys.stdout.buffer.flush()',
].join('\n');

export const DEBUG_RECIPES: Partial<Record<Runtime, DebugRecipe>> = {
  node: {
    port: 9229,
    protocol: 'inspector',
    command: (_m, base) => [base[0]!, '--inspect=127.0.0.1:9229', ...base.slice(1)],
    forwarder: (port) => ['node', '-e', NODE_FORWARDER, String(port)],
    syscalls: [],
  },
  python: {
    image: { tag: 'logomesh/debug-python:latest', contextDir: path.join(IMAGES_DIR, 'debug', 'python') },
    port: 5678,
    protocol: 'dap',
    // -Xfrozen_modules=off: with frozen standard modules debugpy may miss breakpoints (its own warning).
    command: (m) => ['python3', '-u', '-B', '-Xfrozen_modules=off', '-m', 'debugpy', '--listen', '127.0.0.1:5678', `${PLUGIN_MOUNT}/${m.entrypoint}`],
    forwarder: (port) => ['python3', '-u', '-c', PYTHON_FORWARDER, String(port)],
    syscalls: [],
  },
};
