import Module, { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Parts of dockerode that LogoMesh never uses, kept from loading until something calls them:
 * its BuildKit session support (`lib/session.js`: @grpc/grpc-js, @grpc/proto-loader and
 * protobufjs) and docker-modem's SSH transport (`lib/ssh.js`: ssh2). Loading them took most
 * of the time of `require('dockerode')`, about 160 of 180 ms, on every `logomesh run`. Each
 * exports one function: a stand-in takes its place in the module cache and loads the real
 * module on its first call, so nothing changes for a caller that does use them.
 */
export function deferUnusedDockerodeParts(req: NodeJS.Require): void {
  try {
    const dockerode = path.dirname(req.resolve('dockerode/package.json'));
    const modem = path.dirname(createRequire(path.join(dockerode, 'lib', 'docker.js')).resolve('docker-modem/package.json'));
    deferFunctionModule(req, path.join(dockerode, 'lib', 'session.js'));
    deferFunctionModule(req, path.join(modem, 'lib', 'ssh.js'));
  } catch {
    // Another layout of the packages: they load as usual.
  }
}

function deferFunctionModule(req: NodeJS.Require, file: string): void {
  if (req.cache[file]) return;
  let real: ((...args: unknown[]) => unknown) | undefined;
  const stub = function (this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      delete req.cache[file];
      real = req(file) as (...args: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  const m = new Module(file);
  m.filename = file;
  m.loaded = true;
  m.exports = stub;
  req.cache[file] = m;
}
