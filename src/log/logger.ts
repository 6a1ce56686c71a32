/**
 * pino JSON lines on stdout. Every thread writes to fd 1 itself through its own sonic-boom
 * destination, so a busy worker never funnels log lines through the main thread.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/schema.ts';

export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  /** Worker id; absent on the main (acceptor) thread. */
  worker?: number;
}

export function createLogger(opts: LoggerOptions): { logger: Logger; flush: () => void } {
  const destination = pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      level: opts.level,
      base: opts.worker === undefined ? { pid: process.pid, thread: 'main' } : { pid: process.pid, worker: opts.worker },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return {
    logger,
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // Nothing is pending, or fd 1 is gone; either way there is nothing left to save.
      }
    },
  };
}
