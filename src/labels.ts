import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Labels on every container, network, volume and image LogoMesh creates, so that a later
 * run (or a test's teardown) can find, adopt or remove them. Nothing is tracked anywhere
 * else: the engine's own label index is the source of truth.
 */
export const LABEL = {
  owner: 'io.logomesh.owner',
  plugin: 'io.logomesh.plugin',
  manifestHash: 'io.logomesh.manifest-hash',
  instance: 'io.logomesh.instance',
  inputsHash: 'io.logomesh.inputs-hash',
  role: 'io.logomesh.role',
  /** Host name of the machine whose process created the resource (pids are per host). */
  host: 'io.logomesh.host',
  /** A plugin container started with a start-up CPU boost: its boosted CFS quota (us), and its declared one. */
  cpuBoost: 'io.logomesh.cpu-boost',
  cpuDeclared: 'io.logomesh.cpu-declared',
} as const;

export const OWNER = 'logomesh';

export type Role = 'plugin' | 'runtime-image' | 'plugin-image' | 'test' | 'egress';

/**
 * The id of this controller instance (a `logomesh run`, a controller, a test run).
 * LOGOMESH_INSTANCE overrides it so that a supervisor or test can clean up what it started.
 */
export function instanceId(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.LOGOMESH_INSTANCE;
  if (fromEnv && /^[A-Za-z0-9_.-]{1,64}$/.test(fromEnv)) return fromEnv;
  return `${RUN_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Instances made by a one-shot `logomesh run` carry the owning process id after this. */
const RUN_PREFIX = 'run-';

/** The pid of the `logomesh run` process that owns an instance id, if it is one. */
export function runInstancePid(instance: string): number | undefined {
  const m = /^run-(\d+)-[0-9a-f]+$/.exec(instance);
  return m ? Number(m[1]) : undefined;
}

export function ownerLabels(role: Role, instance: string): Record<string, string> {
  return { [LABEL.owner]: OWNER, [LABEL.role]: role, [LABEL.instance]: instance, [LABEL.host]: hostname() };
}

/** Engine list filter for everything of one instance (or of every instance). */
export function labelFilter(instance?: string): { label: string[] } {
  const label = [`${LABEL.owner}=${OWNER}`];
  if (instance) label.push(`${LABEL.instance}=${instance}`);
  return { label };
}
