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
