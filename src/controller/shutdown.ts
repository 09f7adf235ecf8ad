import { rmSync } from 'node:fs';
import { errorText } from '../engine/docker.js';
import type { Backend } from './backend.js';
import type { Home } from './home.js';
import type { ControllerParts } from './parts.js';

/**
 * Stop every plugin in reverse dependency order, then every part, and remove what this
 * controller made: a clean stop leaves nothing to adopt. The plugin folders and the
 * operator's revocations and grants stay in state.json for the next start.
 */
export async function closeParts(parts: ControllerParts, backend: Backend, home: Home, stop: (id: string) => Promise<void>): Promise<void> {
  const { engine, kernel, registry, monitoring, hub, debugMode, memory, saved, grants, audit, log } = parts;
  engine.close();
  kernel?.close();
  for (const level of registry.stopLevels()) await Promise.allSettled(level.map((id) => stop(id)));
  await monitoring.close();
  await hub.close();
  await debugMode?.close();
  await memory.close().catch((err: unknown) => log.warn({ err: errorText(err) }, 'could not remove the shared-memory pool'));
  await backend.close();
  rmSync(home.socketsDir, { recursive: true, force: true });
  saved.keepForNextStart(registry.records(), (id) => grants.saved(id));
  grants.close();
  await audit.close();
  // Whatever a failed stop left behind still carries this controller's label.
  await backend.removeAll();
}

/**
 * Stop serving and leave the plugins running, for the next controller of this installation
 * to adopt: state.json, the audit trail and the hub keys stay.
 */
export async function leaveParts(parts: ControllerParts, backend: Backend): Promise<void> {
  const { engine, kernel, registry, supervisor, hub, grants, audit, saved } = parts;
  engine.close();
  kernel?.close();
  for (const m of registry.records()) supervisor.stopTimers(m);
  saved.flush(); // a lifecycle save still waiting: the next controller reads it
  await hub.close();
  await backend.close();
  grants.close();
  await audit.close();
}
