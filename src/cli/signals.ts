/** Exit status the shell gives a process ended by each signal. */
export const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

export interface SignalAbort extends Disposable {
  readonly signal: AbortSignal;
  /** The first SIGINT or SIGTERM received, if any. */
  readonly received: NodeJS.Signals | undefined;
}

/**
 * Turn the first SIGINT or SIGTERM into an abort, so a command can remove what it created
 * before it exits; `using` removes the handlers again.
 */
export function abortOnSignals(): SignalAbort {
  const abort = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals) => {
    if (received) return;
    received = name;
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: abort.signal,
    get received() {
      return received;
    },
    [Symbol.dispose]() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** Exit status of a process ended by SIGPIPE (128 + 13): what a shell expects when the reader of a pipe is gone. */
export const EXIT_PIPE = 141;

export interface OutputAbort extends Disposable {
  readonly signal: AbortSignal;
  /** The stream whose reader went away (EPIPE), if one did. */
  readonly closed: 'stdout' | 'stderr' | undefined;
}

/**
 * Turn a write to a closed pipe (`logomesh run ... | head -1`) into an abort, instead of the
 * unhandled 'error' that would end the process and leave its container behind. Node ignores
 * SIGPIPE, so the write fails with EPIPE; later writes to the destroyed stream fail too and
 * are swallowed here.
 */
export function abortOnClosedOutput(streams: { readonly stdout: NodeJS.WritableStream; readonly stderr: NodeJS.WritableStream }): OutputAbort {
  const abort = new AbortController();
  let closed: 'stdout' | 'stderr' | undefined;
  const listeners = (['stdout', 'stderr'] as const).map((name) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (closed) return;
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') return;
      closed = name;
      abort.abort();
    };
    streams[name].on('error', onError);
    return () => streams[name].off('error', onError);
  });
  return {
    signal: abort.signal,
    get closed() {
      return closed;
    },
    [Symbol.dispose]() {
      // Kept while the process lives: a late write to a closed pipe must not crash it either.
      if (!closed) for (const off of listeners) off();
    },
  };
}
