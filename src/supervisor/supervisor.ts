/**
 * `shuttle start --supervise`: a parent that stays, for containers (PID 1) and supervisors that
 * follow one process, as Envoy's hot-restarter does. An in-place upgrade starts the new Shuttle
 * as a child of the old one, which then exits: without a supervisor, a container whose PID 1 is
 * Shuttle would stop there. The supervisor:
 *
 *   - starts `shuttle start …` (the same arguments, less --supervise) as its child;
 *   - learns of every process of the line through a unix socket they all inherit (link.ts), so an
 *     upgraded process — the old one's child, not its own — becomes the one it supervises;
 *   - forwards HUP (reload), USR1 (reopen logs), USR2 (upgrade) to the serving process, and TERM
 *     and INT to every live one;
 *   - exits when the last process of the line is gone, with the serving one's exit code;
 *   - under systemd (NOTIFY_SOCKET), is the service's main process: it says READY=1 itself and
 *     its children say nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log/logger.ts';
import { notifySystemd } from '../upgrade/systemd.ts';
import { SUPERVISOR_SOCKET_ENV, type SupervisorMessage } from './link.ts';

const FORWARD_TO_SERVING = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;
const FORWARD_TO_ALL = ['SIGTERM', 'SIGINT'] as const;

interface Supervised {
  pid: number;
  /** Our own child (the first process); upgraded ones are not. */
  child?: ChildProcess;
  linked: boolean;
  alive: boolean;
  /** Reported on the line, or from our child's exit status. */
  code?: number;
}

export interface SupervisorOptions {
  /** node and its arguments for `shuttle start` without --supervise. */
  command: string;
  args: string[];
  logger: Logger;
}

/** Runs until the supervised line ends; resolves with the exit code to exit with. */
export function supervise(opts: SupervisorOptions): Promise<number> {
  const { logger } = opts;
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-supervisor-'));
  const socketPath = join(dir, 'line.sock');
  const procs = new Map<number, Supervised>();
  let serving: Supervised | undefined;
  let announced = false;

  return new Promise<number>((resolve) => {
    const finishIfDone = () => {
      if ([...procs.values()].some((p) => p.alive)) return;
      const code = serving?.code ?? 1;
      logger.info({ supervised: serving?.pid, code }, 'supervisor: the supervised process is gone; exiting with its code');
      server.close();
      rmSync(dir, { recursive: true, force: true });
      for (const s of [...FORWARD_TO_SERVING, ...FORWARD_TO_ALL]) process.removeAllListeners(s);
      resolve(code);
    };

    /** `code`: our child's exit status, or undefined for a line that closed (an upgraded process). */
    const died = (p: Supervised, code: number | undefined) => {
      if (!p.alive) return;
      p.alive = false;
      p.code ??= code;
      if (p.code === undefined) {
        logger.warn({ supervised: p.pid }, 'supervisor: a supervised process died without saying how; counted as code 1');
        p.code = 1;
      }
      finishIfDone();
    };

    const onMessage = (m: SupervisorMessage, conn: net.Socket) => {
      let p = procs.get(m.pid);
      if (!p) {
        p = { pid: m.pid, linked: false, alive: true };
        procs.set(m.pid, p);
      }
      const proc = p;
      if (m.type === 'hello' && !proc.linked) {
        proc.linked = true;
        // Our own child's exit status says more than a closed line; a successor has only this.
        if (!proc.child) conn.on('close', () => died(proc, undefined));
        if (proc !== serving) logger.info({ supervised: proc.pid }, 'supervisor: a new process joined (an upgrade)');
      } else if (m.type === 'ready') {
        if (serving !== proc) logger.info({ supervised: proc.pid, previous: serving?.pid ?? null }, 'supervisor: now supervising this process');
        serving = proc;
        if (!announced) {
          announced = true;
          notifySystemd(logger, { READY: 1, MAINPID: process.pid });
        }
      } else if (m.type === 'exit') {
        proc.code = m.code;
      }
    };

    const server = net.createServer((conn) => {
      let buffered = '';
      conn.setEncoding('utf8');
      conn.on('error', () => {});
      conn.on('data', (chunk: string) => {
        buffered += chunk;
        if (buffered.length > 64 * 1024) return void conn.destroy(); // never from Shuttle: not ours
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          try {
            const m = JSON.parse(line) as SupervisorMessage;
            if (Number.isInteger(m.pid) && m.pid > 0) onMessage(m, conn);
          } catch {
            conn.destroy();
          }
        }
      });
    });

    server.listen(socketPath, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, [SUPERVISOR_SOCKET_ENV]: socketPath };
      delete env.NOTIFY_SOCKET; // systemd hears from the supervisor only
      const child = spawn(opts.command, opts.args, { stdio: 'inherit', env });
      const first: Supervised = { pid: child.pid ?? -1, child, linked: false, alive: true };
      procs.set(first.pid, first);
      serving = first;
      logger.info({ supervised: first.pid, socket: socketPath }, 'supervisor: started shuttle');
      child.on('error', (err) => {
        logger.error({ err: err.message }, 'supervisor: could not start shuttle');
        died(first, 1);
      });
      child.on('exit', (code, signal) => {
        logger.info({ supervised: first.pid, code, signal }, 'supervisor: child exited');
        died(first, code ?? 128 + (signal ? constants.signals[signal] : 0));
      });
    });

    const forward = (signal: NodeJS.Signals, to: Supervised[]) => {
      for (const p of to) {
        try {
          process.kill(p.pid, signal);
        } catch {
          // gone meanwhile: its line or exit status will tell
        }
      }
    };
    for (const s of FORWARD_TO_SERVING) process.on(s, () => forward(s, serving?.alive ? [serving] : []));
    for (const s of FORWARD_TO_ALL) process.on(s, () => forward(s, [...procs.values()].filter((p) => p.alive)));
  });
}
