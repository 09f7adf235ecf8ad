// The coded error of the LogoMesh protocol, and how the SDK describes failures.

/**
 * An error with a LogoMesh code (LM_*). Thrown by call() with the code of the failed
 * response; thrown by a method handler, it answers the request with its code, message and
 * details (any other exception answers with LM_PLUGIN_ERROR).
 */
export class LogoMeshError extends Error {
  /**
   * @param {string} code such as 'LM_INVALID_ARGUMENT'
   * @param {string} [message]
   * @param {unknown} [details] any JSON value
   */
  constructor(code, message, details) {
    super(message ?? code);
    this.name = 'LogoMeshError';
    this.code = code;
    this.details = details;
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) };
  }
}

/** What calls waiting for an answer get when the connection is lost and the SDK reconnects. */
export class ConnectionLost extends LogoMeshError {
  constructor(code, reason) {
    super('LM_PLUGIN_UNAVAILABLE', 'hub connection lost', { status: code, ...(reason ? { reason } : {}) });
  }
}

/** A LogoMeshError, or an object that looks like one (from another copy of the SDK). */
export function isCoded(err) {
  return err instanceof LogoMeshError || (err !== null && typeof err === 'object' && err.name === 'LogoMeshError' && typeof err.code === 'string');
}

/** A failure's text, whatever was thrown (never throws itself). */
export function errorText(err) {
  try {
    if (err instanceof Error) return err.message || err.name;
    if (typeof err === 'string') return err;
    return JSON.stringify(err) ?? String(err);
  } catch {
    try {
      return String(err);
    } catch {
      return 'an unprintable value';
    }
  }
}

/** A failure with its stack when it has one, for the log. */
export function errorStack(err) {
  try {
    return err instanceof Error ? (err.stack ?? err.message) : errorText(err);
  } catch {
    return errorText(err);
  }
}
