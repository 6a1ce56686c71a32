/**
 * Access logs per listener (`access_log: { path, fields }`). The proxies log an access line as
 * `logger.info({ msg: 'access', ... })` on the logger their listener gives them; for a listener
 * with its own access log, that logger is the worker's logger with `info` intercepting access
 * lines (a pino child is made the same way: an object whose prototype is the parent logger):
 *
 *   access_log: true / {}          → the worker's logger (stdout, every field), as before
 *   access_log: { fields }         → stdout, the chosen fields (and msg: "access")
 *   access_log: { path, fields? }  → a JSON line per entry appended to the file, whatever the
 *                                    log level; one sonic-boom per file and worker thread
 *
 * Every worker appends to the same file: each write is whole lines, O_APPEND keeps them apart.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import pino from 'pino';
import type { ConfigProblem } from '../config/load.ts';
import type { AccessLogField, ListenerConfig, ShuttleConfig } from '../config/schema.ts';
import type { Logger } from './logger.ts';

type Record = { [field: string]: unknown };

/** The file a listener's access log names, resolved against the config file's folder. */
export function accessLogPath(path: string, configFile: string): string {
  return isAbsolute(path) ? path : resolve(dirname(configFile), path);
}

/** Problems with the access-log files a config names (checked at load, without creating them). */
export async function accessLogProblems(config: ShuttleConfig, configFile: string): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  await Promise.all(config.listeners.map(async (l, i) => {
    if (typeof l.access_log !== 'object' || l.access_log.path === undefined) return;
    const file = accessLogPath(l.access_log.path, configFile);
    try {
      await access(file, constants.W_OK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return void problems.push({ path: `listeners[${i}].access_log.path`, message: `cannot write ${file}: ${(err as Error).message}` });
      try {
        await access(dirname(file), constants.W_OK);
      } catch (dirErr) {
        problems.push({ path: `listeners[${i}].access_log.path`, message: `cannot create ${file}: ${(dirErr as Error).message}` });
      }
    }
  }));
  return problems;
}

function pick(record: Record, fields: readonly AccessLogField[], keepMsg: boolean): Record {
  const out: Record = keepMsg ? { msg: 'access' } : {};
  for (const f of fields) if (f !== 'time' && record[f] !== undefined) out[f] = record[f];
  return out;
}

/** An append-only file, written whole lines at a time; writes after close are dropped. */
class AccessFile {
  private readonly boom: ReturnType<typeof pino.destination>;
  private closed = false;

  constructor(path: string) {
    this.boom = pino.destination({ dest: path, append: true, sync: false, mkdir: false });
    this.boom.on('error', () => {}); // a full disk must not kill the worker; lines are lost
  }

  write(line: string): void {
    if (!this.closed) this.boom.write(line);
  }

  reopen(): void {
    if (!this.closed) this.boom.reopen();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.boom.end();
  }

  flushSync(): void {
    try {
      if (!this.closed) this.boom.flushSync();
    } catch {
      // not open yet, or the disk refuses: nothing more to save
    }
  }
}

/** One worker thread's access-log files and per-listener loggers. */
export class AccessLogs {
  private readonly files = new Map<string, AccessFile>();
  private readonly base: Logger;
  private readonly configFile: string;

  constructor(base: Logger, configFile: string) {
    this.base = base;
    this.configFile = configFile;
  }

  /** The logger a listener's proxies log through (the base logger when nothing is special). */
  loggerFor(listener: ListenerConfig): Logger {
    const cfg = listener.access_log;
    if (typeof cfg !== 'object' || (cfg.path === undefined && cfg.fields === undefined)) return this.base;
    const base = this.base;
    const fields = cfg.fields;
    let write: (record: Record) => void;
    if (cfg.path !== undefined) {
      const path = accessLogPath(cfg.path, this.configFile);
      let file = this.files.get(path);
      if (!file) this.files.set(path, (file = new AccessFile(path)));
      const out = file;
      const withTime = fields === undefined || fields.includes('time');
      write = (record) => {
        const { msg: _, ...rest } = record;
        const line = fields === undefined ? rest : pick(record, fields, false);
        out.write(`${JSON.stringify(withTime ? { time: new Date().toISOString(), ...line } : line)}\n`);
      };
    } else {
      write = (record) => base.info(pick(record, fields!, true));
    }
    const routed = Object.create(base) as Logger;
    routed.info = function info(this: Logger, ...args: unknown[]) {
      const first = args[0] as Record | null;
      if (args.length === 1 && first !== null && typeof first === 'object' && first.msg === 'access') return write(first);
      return (base.info as (...a: unknown[]) => void)(...args);
    } as Logger['info'];
    return routed;
  }

  /** Closes the files no listener of `config` names any more (after their last lines). */
  retain(config: ShuttleConfig): void {
    const wanted = new Set(config.listeners.flatMap((l) => (typeof l.access_log === 'object' && l.access_log.path !== undefined ? [accessLogPath(l.access_log.path, this.configFile)] : [])));
    for (const [path, file] of this.files) {
      if (wanted.has(path)) continue;
      // Requests of the old generation may still finish: keep the file a while.
      setTimeout(() => file.close(), 60_000).unref();
      this.files.delete(path);
    }
  }

  /** Log rotation (SIGUSR1): the files are opened again by name. */
  reopen(): void {
    for (const f of this.files.values()) f.reopen();
  }

  flushSync(): void {
    for (const f of this.files.values()) f.flushSync();
  }
}
