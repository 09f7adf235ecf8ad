import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deferUnusedDockerodeParts } from '../../src/engine/deferred-modules.js';

const req = createRequire(import.meta.url);
const loaded = (pattern: RegExp) => Object.keys(req.cache).filter((k) => pattern.test(k));

describe('dockerode without the parts LogoMesh does not use', () => {
  it('loads without grpc, protobufjs or ssh2, and the stand-ins load the real modules on their first call', () => {
    for (const k of loaded(/node_modules\/(dockerode|docker-modem|@grpc|protobufjs|ssh2)\//)) delete req.cache[k];
    deferUnusedDockerodeParts(req);
    const Dockerode = req('dockerode') as new () => { modem: unknown };
    expect(new Dockerode().modem).toBeDefined();
    expect(loaded(/node_modules\/(@grpc|protobufjs|ssh2)\//)).toEqual([]);
    // docker-modem's ssh transport, called: ssh2 loads then, and the stand-in hands over.
    const modem = path.dirname(createRequire(req.resolve('dockerode')).resolve('docker-modem/package.json'));
    const ssh = req(path.join(modem, 'lib', 'ssh.js')) as (opt: object) => { createConnection: unknown };
    expect(typeof ssh({}).createConnection).toBe('function');
    expect(loaded(/node_modules\/ssh2\//).length).toBeGreaterThan(0);
  });
});
