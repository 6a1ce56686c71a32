/**
 * A supervised Shuttle process's line to its supervisor (`shuttle start --supervise`): a unix
 * socket named by SHUTTLE_SUPERVISOR_SOCKET, inherited by every process of the line (upgrades
 * included), on which each says who it is, when it serves, and how it exits:
 *
 *   {"type":"hello","pid":123}   at start (an upgraded process is not the supervisor's child)
 *   {"type":"ready","pid":123}   serving: the supervisor forwards signals to it from now on
 *   {"type":"exit","pid":123,"code":0}
 *
 * The connection closing without an exit line means the process died.
 */
import net from 'node:net';

export const SUPERVISOR_SOCKET_ENV = 'SHUTTLE_SUPERVISOR_SOCKET';

export type SupervisorMessage =
  | { type: 'hello'; pid: number }
  | { type: 'ready'; pid: number }
  | { type: 'exit'; pid: number; code: number };

export interface SupervisorLink {
  ready(): void;
  /** Says how this process exits; resolves once said (or after 1 s at most). */
  exiting(code: number): Promise<void>;
}

const NO_LINK: SupervisorLink = { ready() {}, exiting: async () => {} };

/** Connects to the supervisor when there is one; a no-op link otherwise. */
export function connectSupervisor(onError: (err: Error) => void): SupervisorLink {
  const path = process.env[SUPERVISOR_SOCKET_ENV];
  if (!path) return NO_LINK;
  const socket = net.connect(path);
  socket.on('error', onError);
  socket.unref(); // the line never keeps a process alive
  const send = (m: SupervisorMessage) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(m)}\n`);
  };
  send({ type: 'hello', pid: process.pid });
  return {
    ready: () => send({ type: 'ready', pid: process.pid }),
    exiting: (code) => new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      const timer = setTimeout(resolve, 1_000);
      socket.end(`${JSON.stringify({ type: 'exit', pid: process.pid, code } satisfies SupervisorMessage)}\n`, () => {
        clearTimeout(timer);
        resolve();
      });
    }),
  };
}
