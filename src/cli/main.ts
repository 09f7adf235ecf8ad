import { parseArgs } from 'node:util';
import { exitStatusOf } from './exit-status.js';
import { processIo, type CliIo } from './io.js';
import { USAGE, usage } from './usage.js';



/** The `logomesh` command. Returns the process exit code; never calls process.exit. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
        if (positionals.length === 0) throw usage('validate needs at least one manifest file or plugin folder');
        // Commands load their modules on demand: the CLI starts in a fraction of the time.
        const { validateCommand } = await import('./validate.js');
        return validateCommand(positionals, values.json === true, io);
      }
      case 'run':
        // The installed command runs `run` from its own bundle (bin/logomesh.js); the same code.
        return await (await import('./run-main.js')).runMain(rest, io);
      case 'up': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: {
            detach: { type: 'boolean', short: 'd', default: false },
            policy: { type: 'string' },
            'host-methods': { type: 'string' },
            debug: { type: 'boolean', default: false },
            backend: { type: 'string', default: 'docker' },
            namespace: { type: 'string' },
            registry: { type: 'string' },
            arch: { type: 'string' },
            'pod-cidr': { type: 'string' },
          },
        });
        if (positionals.length > 1) throw usage('up takes one folder of plugin folders');
        // A debugger opens a way into a plugin and relaxes its sandbox: development only.
        if (values.debug) throw usage('logomesh up does not run plugins under a debugger; use logomesh dev <dir> --debug on a development machine');
        if (values.backend !== 'docker' && values.backend !== 'kubernetes') throw usage(`--backend must be docker or kubernetes, found '${values.backend}'`);
        const kubeOnly = (['namespace', 'registry', 'arch', 'pod-cidr'] as const).filter((o) => values[o] !== undefined);
        if (values.backend === 'docker' && kubeOnly.length) throw usage(`--${kubeOnly[0]} is an option of --backend kubernetes`);
        const [{ upCommand }, { applyPolicyOption, createLogger, hostMethodsFromEnv }] = await Promise.all([import('./up.js'), import('../index.js')]);
        applyPolicyOption(values.policy); // checked now; the controller reads LOGOMESH_POLICY
        // Checked now, and handed on to the controller (and to a background one under -d) as the variable.
        if (values['host-methods'] !== undefined) process.env.LOGOMESH_HOST_METHODS = values['host-methods'];
        hostMethodsFromEnv();
        const kube = { namespace: values.namespace, registry: values.registry, arch: values.arch, podCidr: values['pod-cidr'] };
        const kubernetes = Object.fromEntries(Object.entries(kube).filter(([, v]) => v !== undefined)) as Record<string, string>;
        return await upCommand({ ...(positionals[0] !== undefined ? { dir: positionals[0] } : {}), detach: values.detach === true, ...(values.backend === 'kubernetes' ? { kubernetes } : {}) }, io, createLogger());
      }
      case 'ps': {
        const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
        return await (await import('./control.js')).psCommand(values.json === true, io);
      }
      case 'schema': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { sample: { type: 'string' } } });
        if (positionals.length > 1 || (positionals.length === 0) === (values.sample === undefined)) throw usage("schema needs <plugin>.<method>, or --sample '<json>'");
        return await (await import('./control.js')).schemaCommand(positionals[0], values.sample, io);
      }
      case 'segments': {
        const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
        return await (await import('./control.js')).segmentsCommand(values.json === true, io);
      }
      case 'call': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { timeout: { type: 'string' }, json: { type: 'boolean', default: false } } });
        if (positionals.length < 1 || positionals.length > 2) throw usage('call needs <plugin>.<method> and optional JSON arguments');
        const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
        if (timeout !== undefined && !(timeout > 0)) throw usage(`--timeout must be a positive number of milliseconds, found '${values.timeout}'`);
        return await (await import('./control.js')).callCommand(positionals[0]!, positionals[1], timeout, io, values.json === true);
      }
      case 'logs': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { follow: { type: 'boolean', short: 'f', default: false }, lines: { type: 'string', short: 'n', default: '100' } },
        });
        if (positionals.length !== 1) throw usage('logs needs one plugin id');
        return await (await import('./control.js')).logsCommand(positionals[0]!, Number(values.lines), values.follow === true, io);
      }
      case 'stop':
      case 'start':
      case 'restart': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length !== 1) throw usage(`${command} needs one plugin id`);
        return await (await import('./control.js')).actionCommand(command, positionals[0]!, io);
      }
      case 'down':
        return await (await import('./control.js')).downCommand(io);
      case 'apply': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { 'dry-run': { type: 'boolean', default: false }, prune: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } });
        if (positionals.length !== 1) throw usage('apply needs one folder of plugin folders (or one plugin folder)');
        return await (await import('./deploy.js')).applyCommand(positionals[0]!, { dryRun: values['dry-run'] === true, prune: values.prune === true, json: values.json === true }, io);
      }
      case 'load': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length !== 1) throw usage('load needs one folder of plugin folders (or one plugin folder)');
        return await (await import('./deploy.js')).loadCommand(positionals[0]!, io);
      }
      case 'unload': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length !== 1) throw usage('unload needs one plugin id');
        return await (await import('./deploy.js')).unloadCommand(positionals[0]!, io);
      }
      case 'revoke':
      case 'grant': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { ttl: { type: 'string' }, read: { type: 'boolean', default: false }, write: { type: 'boolean', default: false } },
        });
        if (positionals[1] === 'host') {
          if (positionals.length !== 3) throw usage(`${command} <plugin> host needs one host as the manifest lists it, e.g. ${command} fetcher host api.example.com:443`);
          if (values.read || values.write || values.ttl !== undefined) throw usage('--read, --write and --ttl do not apply to hosts');
          if (!HOST.test(positionals[2]!)) {
            throw usage(`'${positionals[2]}' is not a host as a manifest lists it: a name with its port, such as api.example.com:443 (no scheme, no path)`);
          }
          return await (await import('./control.js')).hostPermissionCommand(command, positionals[0]!, positionals[2]!, io);
        }
        if (positionals[1] === 'topic') {
          if (positionals.length !== 3) throw usage(`${command} <plugin> topic needs one topic pattern as the manifest lists it, e.g. ${command} analyzer topic thought.added`);
          if (values.read || values.write) throw usage('--read and --write apply to path grants only');
          if (!(await import('../index.js')).isTopicPattern(positionals[2]!)) {
            throw usage(`'${positionals[2]}' is not a topic pattern as a manifest lists it: a dotted name (thought.added), a prefix ending in .* (thought.*), or *`);
          }
          const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
          if (ttl !== undefined && !(ttl > 0)) throw usage(`--ttl must be a positive number of milliseconds, found '${values.ttl}'`);
          if (command === 'revoke' && ttl !== undefined) throw usage('--ttl applies to grant only');
          return await (await import('./control.js')).topicPermissionCommand(command, positionals[0]!, positionals[2]!, ttl, io);
        }
        if (positionals[1] === 'path') {
          if (positionals.length !== 3) throw usage(`${command} <plugin> path needs one host path, e.g. ${command} analyzer path /srv/data${command === 'grant' ? ':/grants/data --read' : ''}`);
          if (values.read && values.write) throw usage('give --read or --write, not both');
          if (command === 'revoke' && (values.read || values.write || values.ttl !== undefined)) throw usage('--read, --write and --ttl apply to grant only');
          const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
          if (ttl !== undefined && !(ttl > 0)) throw usage(`--ttl must be a positive number of milliseconds, found '${values.ttl}'`);
          return await (await import('./control.js')).pathPermissionCommand(command, positionals[0]!, positionals[2]!, { write: values.write === true, ...(ttl !== undefined ? { ttlMs: ttl } : {}) }, io);
        }
        if (values.read || values.write) throw usage('--read and --write apply to path grants only');
        if (positionals.length !== 2) throw usage(`${command} needs <plugin> <method>, e.g. ${command} analyzer tokenizer.tokenize`);
        const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
        if (ttl !== undefined && !(ttl > 0)) throw usage(`--ttl must be a positive number of milliseconds, found '${values.ttl}'`);
        if (command === 'revoke' && ttl !== undefined) throw usage('--ttl applies to grant only');
        return await (await import('./control.js')).permissionCommand(command, positionals[0]!, positionals[1]!, ttl, io);
      }
      case 'stats': {
        const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false }, 'no-stream': { type: 'boolean', default: false } } });
        return await (await import('./stats.js')).statsCommand({ json: values.json === true, stream: values['no-stream'] !== true }, io);
      }
      case 'limit': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length < 2) throw usage('limit needs <plugin> and at least one of memory=<MB>, cpu=<percent>, pids=<count>');
        return await (await import('./stats.js')).limitCommand(positionals[0]!, positionals.slice(1), io);
      }
      case 'audit': {
        const { values } = parseArgs({
          args: rest,
          options: { plugin: { type: 'string' }, since: { type: 'string' }, json: { type: 'boolean', default: false }, verify: { type: 'boolean', default: false } },
        });
        return await (await import('./control.js')).auditCommand({ ...(values.plugin ? { plugin: values.plugin } : {}), ...(values.since ? { since: values.since } : {}), json: values.json === true, verify: values.verify === true }, io);
      }
      case 'clean': {
        const { values } = parseArgs({ args: rest, options: { all: { type: 'boolean', default: false } } });
        const { cleanCommand } = await import('./clean.js');
        return await cleanCommand(values.all === true, io);
      }
      case 'create': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length < 2 || positionals.length > 3) throw usage('create needs <runtime> <name> and an optional folder');
        const { createCommand } = await import('./create.js');
        return createCommand(positionals[0]!, positionals[1]!, positionals[2], io);
      }
      case 'test': {
        const split = rest.indexOf('--');
        const { positionals } = parseArgs({ args: split < 0 ? rest : rest.slice(0, split), allowPositionals: true, options: {} });
        if (positionals.length !== 1) throw usage('test needs one plugin folder');
        const [{ testCommand }, { createLogger }] = await Promise.all([import('./test.js'), import('../index.js')]);
        return await testCommand(positionals[0]!, split < 0 ? [] : rest.slice(split + 1), io, createLogger('logomesh', process.env.LOGOMESH_LOG_LEVEL ?? 'warn'));
      }
      case 'dev': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { attach: { type: 'boolean', default: false }, debug: { type: 'boolean', default: false } } });
        if (positionals.length !== 1) throw usage('dev needs one plugin folder, or a folder of plugin folders');
        if (values.attach && values.debug) throw usage('--debug needs a dev session of its own: a running controller is not in debug mode (and logomesh up never is)');
        const [{ devCommand }, { createLogger }] = await Promise.all([import('./dev.js'), import('../index.js')]);
        return await devCommand(positionals[0]!, { attach: values.attach === true, debug: values.debug === true }, io, createLogger('logomesh', process.env.LOGOMESH_LOG_LEVEL ?? 'warn'));
      }
      case 'keygen': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length !== 1) throw usage('keygen needs one name: it writes <name>.key and <name>.pub');
        return (await import('./keygen.js')).keygenCommand(positionals[0]!, io);
      }
      case 'sign': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { key: { type: 'string' } } });
        if (positionals.length !== 1 || !values.key) throw usage('sign needs one plugin folder and --key <private key file>');
        return (await import('./sign.js')).signCommand(positionals[0]!, values.key, io);
      }
      case 'kube': {
        const [sub, ...args] = rest;
        if (sub !== 'render') throw usage(sub === undefined ? 'kube needs a subcommand: render' : `unknown kube subcommand '${sub}' (known: render)`);
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { policy: { type: 'string' }, namespace: { type: 'string' }, registry: { type: 'string' }, arch: { type: 'string' }, 'pod-cidr': { type: 'string' } },
        });
        if (positionals.length !== 1) throw usage('kube render needs one folder of plugin folders (or one plugin folder)');
        const { 'pod-cidr': podCidr, ...rest2 } = values;
        return (await import('./kube.js')).kubeRenderCommand(positionals[0]!, { ...rest2, ...(podCidr !== undefined ? { podCidr } : {}) }, io);
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw usage(`unknown command '${command}'`);
    }
  } catch (err) {
    // The library's engine errors are worded by the library, loaded only on such a failure.
    return await exitStatusOf(err, io, async () => (await import('../index.js')).engineError);
  }
}

/** A network host as the manifest schema allows it: a name (or `*.suffix`) with an optional port. */
const HOST = /^(?:\*\.)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::\d{1,5})?$/;
