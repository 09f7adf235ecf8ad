import { LogoMeshError } from '../errors.js';
import type { HubOptions } from './hub.js';

/** The hub limits an operator sets, and the variables that set them (docs/operations.md). */
export type HubLimits = Pick<HubOptions, 'maxMessageBytes' | 'maxQueuedBytes' | 'rateLimit' | 'maxInFlight' | 'hostRateLimit' | 'hostMaxInFlight' | 'maxHostClients' | 'maxSubscriptions' | 'maxWaitingPerPlugin'>;

const VARIABLES: Record<keyof HubLimits, string> = {
  maxMessageBytes: 'LOGOMESH_MAX_MESSAGE_BYTES',
  maxQueuedBytes: 'LOGOMESH_MAX_QUEUED_BYTES',
  rateLimit: 'LOGOMESH_RATE_LIMIT',
  maxInFlight: 'LOGOMESH_MAX_IN_FLIGHT',
  hostRateLimit: 'LOGOMESH_HOST_RATE_LIMIT',
  hostMaxInFlight: 'LOGOMESH_HOST_MAX_IN_FLIGHT',
  maxHostClients: 'LOGOMESH_MAX_HOST_CLIENTS',
  maxSubscriptions: 'LOGOMESH_MAX_SUBSCRIPTIONS',
  maxWaitingPerPlugin: 'LOGOMESH_MAX_WAITING_PER_PLUGIN',
};

/** Read the hub limits from the environment; a variable that is set must be a positive integer (LM_USAGE otherwise). */
export function hubLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): HubLimits {
  const out: Record<string, number> = {};
  for (const [key, name] of Object.entries(VARIABLES)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    out[key] = positiveInteger(name, raw);
  }
  return out as HubLimits;
}

export function positiveInteger(name: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new LogoMeshError('LM_USAGE', `${name} must be a positive whole number, found '${raw.slice(0, 40)}'`, { field: name, expected: 'a positive whole number', found: raw.slice(0, 40) });
  }
  return n;
}
