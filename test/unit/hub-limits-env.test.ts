import { describe, expect, it } from 'vitest';
import { hubLimitsFromEnv } from '../../src/hub/limits-from-env.js';

describe('hub limits from the environment', () => {
  it('reads each variable that is set, and nothing else', () => {
    expect(hubLimitsFromEnv({ LOGOMESH_HOST_RATE_LIMIT: '500', LOGOMESH_MAX_HOST_CLIENTS: '8', LOGOMESH_MAX_QUEUED_BYTES: '1048576', OTHER: 'x' })).toEqual({ hostRateLimit: 500, maxHostClients: 8, maxQueuedBytes: 1_048_576 });
    expect(hubLimitsFromEnv({})).toEqual({});
  });
  it('refuses what is not a positive whole number, naming the variable and what it found', () => {
    for (const bad of ['0', '-3', '1.5', 'lots', '1e3', '99999999999999999999']) {
      expect(() => hubLimitsFromEnv({ LOGOMESH_RATE_LIMIT: bad })).toThrow(expect.objectContaining({ code: 'LM_USAGE', message: `LOGOMESH_RATE_LIMIT must be a positive whole number, found '${bad}'` }));
    }
  });
});
