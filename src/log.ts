import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The process logger: JSON lines on stderr by default (stdout belongs to plugin output and
 * command results), readable when stderr is a TTY. LOGOMESH_LOG_LEVEL sets the level.
 */
export function createLogger(name = 'logomesh', level = process.env.LOGOMESH_LOG_LEVEL ?? 'info'): Logger {
  if (process.stderr.isTTY && process.env.LOGOMESH_LOG_FORMAT !== 'json') {
    return pino({
      name,
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ name, level }, pino.destination(2));
}

/** A logger that drops everything, for library use without a caller-provided logger. */
export const silentLogger: Logger = pino({ level: 'silent' });
