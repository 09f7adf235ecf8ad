import { afterAll, describe, expect, it } from 'vitest';
import { baseImages } from '../../src/images/engine-images.js';
import { npmName, packageRequest, type PackageRequest } from '../../src/images/package-request.js';
import { DEFAULT_PIP_INDEX, npmDockerfile, packagesDockerfile, pipDockerfile, PIP_INDEX_ENV, PYDEPS_DIR, PYDEPS_PTH } from '../../src/images/packages-dockerfile.js';
import { packagesImageHash, packagesImageTag } from '../../src/images/packages-image.js';
import { explainPipFailure } from '../../src/images/pip-failure.js';
import { LogoMeshError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { dedent, PluginFolders } from './support/plugin-folder.js';

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

const ENTRY = { python: 'main.py', node: 'index.mjs', go: 'main.go', rust: 'main.rs' } as const;

/** A plugin of `runtime` whose manifest ends with the given `dependencies` block (YAML). */
function plugin(runtime: keyof typeof ENTRY, dependencies: string): LoadedManifest {
  const manifest = `id: deps-demo\nversion: 1.0.0\nruntime: ${runtime}\nentrypoint: ${ENTRY[runtime]}\ndependencies:\n${dedent(dependencies).replace(/^/gm, '  ')}`;
  return loadManifest(folders.create({ 'plugin.yaml': manifest, [ENTRY[runtime]]: '\n' }));
}

function refusal(fn: () => unknown): LogoMeshError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LogoMeshError);
    return err as LogoMeshError;
  }
  throw new Error('expected a refusal');
}

describe('packageRequest: what a plugin asks to have installed', () => {
  it('is undefined without packages, or with only empty lists', () => {
    expect(packageRequest(plugin('node', 'system: [sh]'))).toBeUndefined();
    expect(packageRequest(plugin('python', 'packages: { python: [], npm: [] }'))).toBeUndefined();
    expect(packageRequest(plugin('go', 'packages: { go: [] }'))).toBeUndefined();
  });

  it("takes the runtime's own list, sorted and without duplicates", () => {
    expect(packageRequest(plugin('node', 'packages: { npm: [ms, is-number, ms] }'))).toEqual({ runtime: 'node', manager: 'npm', key: 'npm', specs: ['is-number', 'ms'] });
    expect(packageRequest(plugin('python', 'packages: { python: [requests, numpy==1.26.4] }'))).toEqual({
      runtime: 'python',
      manager: 'pip',
      key: 'python',
      specs: ['numpy==1.26.4', 'requests'],
    });
  });

  it('refuses Go and Rust package lists with LM_PACKAGES_UNSUPPORTED saying how they get code instead', () => {
    const go = refusal(() => packageRequest(plugin('go', 'packages: { go: [github.com/pkg/errors] }')));
    expect(go.code).toBe('LM_PACKAGES_UNSUPPORTED');
    expect(go.details).toMatchObject({ plugin: 'deps-demo', path: '/dependencies/packages/go', line: 6 });
    expect(go.message).toContain('vendor/');
    expect(go.message).toContain('github.com/pkg/errors');
    const rust = refusal(() => packageRequest(plugin('rust', 'packages: { rust: [tokio] }')));
    expect(rust.code).toBe('LM_PACKAGES_UNSUPPORTED');
    expect(rust.message).toMatch(/crates\.io is never reached.*modules/);
  });

  it("refuses another runtime's list, and reports every problem in file order", () => {
    const err = refusal(() =>
      packageRequest(
        plugin(
          'python',
          `
          packages:
            npm: [ms]
            python: ["--index-url=http://evil.example/simple", numpy]
          `,
        ),
      ),
    );
    expect(err.code).toBe('LM_PACKAGES_UNSUPPORTED');
    const issues = err.details.issues as { path: string; line: number }[];
    expect(issues.map((i) => i.path)).toEqual(['/dependencies/packages/npm', '/dependencies/packages/python/0']);
    expect(issues.map((i) => i.line)).toEqual([7, 8]);
    expect(err.message).toContain('packages for the python runtime only, listed under dependencies.packages.python');
    expect(err.message.split('\n')[1]).toMatch(/plugin\.yaml:7:5 LM_PACKAGES_UNSUPPORTED \/dependencies\/packages\/npm: expected/);
  });

  it.each([
    'file:../secret-package',
    '../secret-package',
    '/etc',
    'git+https://example.com/x.git',
    'github:user/repo',
    'https://example.com/x.tgz',
    'npm:other@1.0.0',
    '--registry=http://evil.example',
    '-g',
    'logomesh',
    'logomesh@1.0.0',
  ])('refuses the npm spec %s: the fetch runs on the host', (spec) => {
    const err = refusal(() => packageRequest(plugin('node', `packages: { npm: [${JSON.stringify(spec)}] }`)));
    expect(err.code).toBe('LM_PACKAGES_UNSUPPORTED');
    expect(err.details.path).toBe('/dependencies/packages/npm/0');
  });

  it.each(['ms', 'ms@2.1.3', 'is-number@^7', 'x@>=1.0.0', 'left-pad@latest', '@types/node', '@scope/pkg.js@~1.2'])('accepts the npm spec %s', (spec) => {
    expect(packageRequest(plugin('node', `packages: { npm: [${JSON.stringify(spec)}] }`))?.specs).toEqual([spec]);
  });

  it.each(['-r', '--index-url=http://evil.example', 'https://example.com/x.whl', './local', 'git+https://example.com/x.git', 'numpy==', 'a[b'])('refuses the pip spec %s', (spec) => {
    const err = refusal(() => packageRequest(plugin('python', `packages: { python: [${JSON.stringify(spec)}] }`)));
    expect(err.code).toBe('LM_PACKAGES_UNSUPPORTED');
  });

  it.each(['numpy', 'numpy==1.26.4', 'requests[socks]>=2,<3', 'zope.interface', 'pkg~=1.4.2', 'a_b-c'])('accepts the pip spec %s', (spec) => {
    expect(packageRequest(plugin('python', `packages: { python: [${JSON.stringify(spec)}] }`))?.specs).toEqual([spec]);
  });

  it('reads the name part of an npm spec', () => {
    expect(npmName('ms')).toBe('ms');
    expect(npmName('ms@2')).toBe('ms');
    expect(npmName('@types/node@^20')).toBe('@types/node');
    expect(npmName('@types/node')).toBe('@types/node');
  });
});

const NODE_BASE = 'logomesh/runtime-node:latest';
const PY_BASE = 'logomesh/runtime-python:latest';

describe('the generated Dockerfiles', () => {
  it('npm: copies the host-fetched node_modules next to the SDK link, and runs nothing', () => {
    const text = npmDockerfile(NODE_BASE);
    const instructions = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(instructions).toEqual([`FROM ${NODE_BASE}`, 'COPY node_modules/ /node_modules/']);
    expect(baseImages(text)).toEqual([NODE_BASE]);
  });

  it('pip: installs in a build stage as the plugin user, every spec one exec-form argument after --', () => {
    const specs = ['numpy==1.26.4', 'requests[socks]>=2,<3'];
    const text = pipDockerfile(PY_BASE, specs);
    const lines = text.split('\n');
    expect(lines).toContain(`FROM ${PY_BASE} AS build`);
    expect(text).toMatch(/apt-get install -y --no-install-recommends python3-pip/);
    const pipLine = lines.find((l) => l.startsWith('RUN ["python3"'));
    expect(pipLine).toBeDefined();
    const argv = JSON.parse(pipLine!.slice('RUN '.length)) as string[];
    expect(argv.slice(0, 4)).toEqual(['python3', '-m', 'pip', 'install']);
    expect(argv).toContain('--no-cache-dir');
    expect(argv[argv.indexOf('--target') + 1]).toBe(PYDEPS_DIR);
    expect(argv.slice(argv.indexOf('--'))).toEqual(['--', ...specs]);
    expect(argv).not.toContain('--index-url');
    // pip runs unprivileged: USER 10001 comes after the apt step and before pip.
    expect(lines.indexOf('USER 10001:10001')).toBeGreaterThan(lines.findIndex((l) => l.startsWith('RUN apt-get')));
    expect(lines.indexOf('USER 10001:10001')).toBeLessThan(lines.indexOf(pipLine!));
    // The plugin image is the runtime image plus the installed files and a .pth naming them.
    const final = lines.slice(lines.lastIndexOf(`FROM ${PY_BASE}`));
    expect(final.filter((l) => l)).toEqual([`FROM ${PY_BASE}`, `COPY --chown=0:0 --from=build ${PYDEPS_DIR} ${PYDEPS_DIR}`, `COPY ${PYDEPS_PTH} /usr/lib/python3/dist-packages/${PYDEPS_PTH}`]);
    expect(baseImages(text)).toEqual([PY_BASE]);
  });

  it(`pip: ${PIP_INDEX_ENV} names another index; an http one is trusted explicitly`, () => {
    const req: PackageRequest = { runtime: 'python', manager: 'pip', key: 'python', specs: ['numpy'] };
    const https = packagesDockerfile(req, PY_BASE, { [PIP_INDEX_ENV]: 'https://mirror.example/simple' });
    expect(https).toContain('"--index-url","https://mirror.example/simple","--target"');
    expect(https).not.toContain('--trusted-host');
    const http = packagesDockerfile(req, PY_BASE, { [PIP_INDEX_ENV]: 'http://mirror.example:8080/simple' });
    expect(http).toContain('"--index-url","http://mirror.example:8080/simple","--trusted-host","mirror.example","--target"');
    expect(packagesDockerfile(req, PY_BASE, {})).toBe(pipDockerfile(PY_BASE, ['numpy']));
  });
});

describe('the packages image cache key', () => {
  const req = (specs: string[]): PackageRequest => ({ runtime: 'node', manager: 'npm', key: 'npm', specs });
  const df = npmDockerfile(NODE_BASE);

  it('is the same for the same runtime image and list, whatever the manifest order', () => {
    const a = packageRequest(plugin('node', 'packages: { npm: [ms, is-number] }'))!;
    const b = packageRequest(plugin('node', 'packages: { npm: [is-number, ms, ms] }'))!;
    expect(packagesImageHash('sha256:aaa', a, df)).toBe(packagesImageHash('sha256:aaa', b, df));
  });

  it('changes with the runtime image id, the list and the Dockerfile', () => {
    const h = packagesImageHash('sha256:aaa', req(['ms']), df);
    expect(packagesImageHash('sha256:bbb', req(['ms']), df)).not.toBe(h);
    expect(packagesImageHash('sha256:aaa', req(['ms@2.1.3']), df)).not.toBe(h);
    expect(packagesImageHash('sha256:aaa', req(['is-number', 'ms']), df)).not.toBe(h);
    expect(packagesImageHash('sha256:aaa', req(['ms']), `${df}# changed\n`)).not.toBe(h);
  });

  it('tags as logomesh/deps-<runtime>:<16 hex digits of the hash>', () => {
    const h = packagesImageHash('sha256:aaa', req(['ms']), df);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(packagesImageTag('node', h)).toBe(`logomesh/deps-node:${h.slice(0, 16)}`);
  });
});

describe('a failed pip build', () => {
  const loaded = plugin('python', 'packages: { python: [numpy] }');
  const request = packageRequest(loaded)!;
  const buildFailure = (tail: string[]) =>
    new LogoMeshError('LM_IMAGE_BUILD', 'building logomesh/deps-python:0123 from /tmp/x failed: returned a non-zero code: 1', { image: 'logomesh/deps-python:0123', tail });

  it('names the unreachable index, the plugin and what to do, and shows only the pip step', () => {
    const err = explainPipFailure(
      buildFailure([
        'Setting up python3-pip (23.0.1+dfsg-1) ...',
        'Step 6/12 : RUN ["python3","-m","pip","install","numpy"]',
        " ---> Running in bcd4140af364",
        "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/numpy/",
        '',
        'ERROR: Could not find a version that satisfies the requirement numpy (from versions: none)',
      ]),
      loaded,
      request,
      DEFAULT_PIP_INDEX,
    ) as LogoMeshError;
    expect(err.code).toBe('LM_IMAGE_BUILD');
    expect(err.message).toMatch(/^cannot install the Python packages of plugin deps-demo \(numpy\): pip in the image build could not reach the package index https:\/\/pypi\.org\/simple\./);
    expect(err.message).toContain(PIP_INDEX_ENV);
    expect(err.message).toContain('Name or service not known');
    expect(err.message).not.toContain('Setting up python3-pip');
    expect(err.details).toMatchObject({ plugin: 'deps-demo', path: '/dependencies/packages/python', index: DEFAULT_PIP_INDEX, image: 'logomesh/deps-python:0123' });
  });

  it('leaves other failures as they are', () => {
    const other = buildFailure(['ERROR: No matching distribution found for numpyy']);
    expect(explainPipFailure(other, loaded, request, DEFAULT_PIP_INDEX)).toBe(other);
    const engine = new Error('engine down');
    expect(explainPipFailure(engine, loaded, request, DEFAULT_PIP_INDEX)).toBe(engine);
  });
});
