import { LogoMeshError } from '../control/client.js';

/** What `logomesh` with no command, `help` or a usage error prints. */
export const USAGE = `usage: logomesh <command> [options]

commands:
  validate <manifest-or-plugin-dir>...   check manifests; exit 1 listing every error  [--json]
  run <plugin-dir>... [--policy file]    run plugins to completion in their sandboxes
  up [dir] [-d] [--policy file] [--host-methods a,b]
                                         start a controller for the plugin folders in dir
                                         (default: the folders this home ran last, else
                                         manifests/); -d runs it in the background;
                                         --host-methods: what host clients may serve plugins
  up [dir] --backend kubernetes [--namespace n] [--registry r] [--arch a] [--pod-cidr c]
                                         the same, with the plugins on the cluster of the
                                         kubeconfig (docs/kubernetes.md#the-kubernetes-backend)
  ps [--json]                            the plugins of the running controller
  segments [--json]                      the shared-memory segments: owner, size, mode, holders, age
  schema <plugin>.<method>               the JSON Schemas a method declares (coordination.methodSchemas)
  schema --sample '<json>'               a schema drafted from a sample value, to start one from
  call <plugin>.<method> [json-args] [--timeout ms] [--json]
                                         call a plugin method; prints the JSON result (--json:
                                         a failure too, as its whole coded error with details)
  logs <plugin> [-f] [-n lines]          a plugin's output
  stop|start|restart <plugin>            one plugin's lifecycle
  down                                   stop every plugin and the controller
  apply <dir> [--dry-run] [--prune] [--json]
                                         make the running controller's plugins what the plugin
                                         folders in dir say: add, replace the changed ones without
                                         failing calls, remove (--prune) the ones dir lacks
  load <dir>                             load the plugin folders in dir and start them
  unload <plugin>                        stop a plugin and forget it
  revoke <plugin> <method>               take a declared method away from a plugin, at once
  grant <plugin> <method> [--ttl ms]     give it back (for ttl ms only, if given)
  grant <plugin> path <host-path>[:<container-path>] [--read|--write] [--ttl ms]
                                         mount a host path the policy's hostPaths allow at
                                         /grants/<name>; the plugin's container is recreated
  revoke <plugin> path <name-or-host-path>
                                         take it away (the container is recreated without it)
  revoke <plugin> host <host:port>       take a host its manifest lists off its network
                                         allow-list (until granted back; survives restarts)
  grant <plugin> host <host:port>        give it back (a running plugin is recreated)
  revoke <plugin> topic <pattern>        take a topic pattern its manifest lists under
                                         coordination.publishes or .subscribes away, at once
  grant <plugin> topic <pattern> [--ttl ms]
                                         give it back (for ttl ms only, if given)
  stats [--json] [--no-stream]           the running plugins' CPU, memory, processes, files,
                                         connections, disk io and violations, every second
  limit <plugin> [memory=<MB>] [cpu=<percent>] [pids=<count>]
                                         change a running plugin's limits live (no restart)
  audit [--plugin id] [--since t] [--json] [--verify]
                                         the audit trail of permission decisions
  clean [--all]                          remove containers, networks and volumes LogoMesh
                                         left (this instance: LOGOMESH_INSTANCE; --all: every one)
  create <runtime> <name> [dir]          a new plugin folder (python, node, go or rust) exposing
                                         hello, with its tests and a README (default dir: ./<name>)
  test <plugin-dir> [-- args]            run a plugin's own tests in its runtime's image
  dev <dir> [--attach] [--debug]        run the plugin folder, or the folder of plugin folders,
                                         print their output, and replace the one that changed
                                         (go and rust: rebuilt first) on every save; 'call'
                                         reaches them. --attach: reload into the controller
                                         already running on this home instead. --debug: each
                                         under its debugger, on a port of 127.0.0.1
  keygen <name>                          a new ed25519 key pair: <name>.key (private, 0600) and
                                         <name>.pub (for the policy's signatures.trustedKeys)
  sign <plugin-dir> --key <file>         sign every file of a plugin folder into its plugin.sig
                                         (policy: --policy or LOGOMESH_POLICY; docs/security.md)
  kube render <dir> [--policy file] [--namespace n] [--registry r] [--arch a] [--pod-cidr c]
                                         print the Kubernetes objects for the plugin folders in dir
                                         as YAML (docs/kubernetes.md); applies nothing

Docs: docs/manifest.md, docs/errors.md`;

/** LM_USAGE with the message and the usage text: the command exits 2. */
export function usage(message: string): LogoMeshError {
  return new LogoMeshError('LM_USAGE', `${message}\n\n${USAGE}`);
}
