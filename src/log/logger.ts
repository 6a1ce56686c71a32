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

export interface LoggerHandle {
  logger: Logger;
  /** Writes out what is buffered; resolves when it is written (or after 1 s at most). */
  flush: () => Promise<void>;
  /** Best effort, for paths that exit at once (fatal errors, a second stop signal). */
  flushSync: () => void;
}

export function createLogger(opts: LoggerOptions): LoggerHandle {
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
  const flushSyncQuietly = () => {
    try {
      destination.flushSync();
    } catch {
      // fd 1 is gone: nothing more can be saved.
    }
  };
  return {
    logger,
    // A thread that exits right after logging must wait for the write, or its last lines are lost:
    // sonic-boom's flush(cb) returns at once when minLength is 0, even with a write in flight (and
    // a worker thread that exits may take a queued write with it). So: wait for the in-flight
    // write to finish, then write what is queued synchronously. `_writing` is sonic-boom's own
    // flag; there is no public one.
    flush: () => new Promise<void>((resolve) => {
      const deadline = Date.now() + 1_000;
      const state = destination as unknown as { _writing: boolean };
      const check = () => {
        if (state._writing && Date.now() < deadline) return void setTimeout(check, 2);
        flushSyncQuietly();
        resolve();
      };
      check();
    }),
    flushSync: flushSyncQuietly,
  };
}
