/**
 * pino logs on stdout: JSON lines, or `--log-format pretty` (pino-pretty, one line per entry,
 * coloured on a terminal; the default when stdout is a terminal). Every thread writes to fd 1
 * itself through its own sonic-boom destination, so a busy worker never funnels log lines through
 * the main thread; pretty lines are formatted in the thread that logs them.
 */
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/schema.ts';

export type { Logger };

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  level: LogLevel;
  /** Worker id; absent on the main (acceptor) thread. */
  worker?: number;
  /** Default json. */
  format?: LogFormat;
  /** Pretty lines in colour (stdout is a terminal). */
  colorize?: boolean;
  /** Names this thread in the base fields instead of main (the supervisor). */
  thread?: string;
}

/** The format when --log-format is not given: pretty for a person at a terminal, JSON otherwise. */
export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
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
  let stream: { write(line: string): void } = destination;
  if (opts.format === 'pretty') {
    // Loaded only when asked for: JSON threads do not pay for it.
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    const prettify = prettyFactory({ colorize: opts.colorize ?? false, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    stream = { write: (line) => destination.write(prettify(line)) };
  }
  const logger = pino(
    {
      level: opts.level,
      base: opts.worker === undefined ? { pid: process.pid, thread: opts.thread ?? 'main' } : { pid: process.pid, worker: opts.worker },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
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
