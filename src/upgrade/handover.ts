/**
 * In-place binary upgrade: the running (old) process starts the new one and hands it every
 * listening socket over the IPC channel (SCM_RIGHTS). No listener is closed and re-bound, so no
 * connection is refused; the old process stops accepting only once the new one reports ready.
 *
 *   old: SIGUSR2 ─▶ spawn(same argv, code now on disk, IPC)
 *   new:            ◀─ hello ─   (asks for the sockets)
 *   old: ─ listener × N, admin, done ─▶ (each with its handle)
 *   new: adopts the sockets, starts workers, health checks ─▶ writes the pid file ─ ready ─▶
 *   old: stops accepting, drains its connections, exits
 *
 *   rollback: the new process exits, or is not ready by the deadline ─▶ old kills it, keeps serving
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type net from 'node:net';
import { successorEnv } from './restart-epoch.ts';

export const UPGRADE_ENV = 'SHUTTLE_UPGRADE_FROM';

type ParentMessage =
  | { type: 'upgrade-listener'; name: string; key: string }
  | { type: 'upgrade-admin' }
  | { type: 'upgrade-done' }
  | { type: 'upgrade-config'; config: unknown };

type ChildMessage =
  | { type: 'upgrade-hello' }
  /** Every socket arrived: the old process may use its own copies as it likes again. */
  | { type: 'upgrade-received' }
  | { type: 'upgrade-ready'; pid: number }
  | { type: 'upgrade-config-request' };

export interface HandedListener {
  name: string;
  key: string;
  server: net.Server;
  /** Connections the socket accepted before the acceptor adopted it (untouched, transferable). */
  early?: net.Socket[];
}

export interface Handover {
  listeners: HandedListener[];
  admin: net.Server | undefined;
  /**
   * Old side, run by xDS (--bootstrap): the config its control plane made, as composed (Shuttle
   * config input). The new process starts from it, so the listeners it inherits keep serving
   * until its own xDS stream answers (see receiveRunningConfig).
   */
  config?: unknown;
  /**
   * Listeners to lend only while they are handed over (reuseport: workers' sockets, borrowed when
   * the new process asks and given back once it has them, or when it fails; see
   * reuseport-handover.ts). Sent after `listeners`.
   */
  borrow?: () => Promise<HandedListener[]>;
  giveBack?: (borrowed: HandedListener[]) => void;
}

/**
 * Old side: starts the new process and resolves with it once it is ready; rejects (after killing
 * it) if it exits first or is not ready within `deadlineMs`.
 */
export function startSuccessor(handover: Handover, deadlineMs: number, keepChannel = false): Promise<ChildProcess> {
  const child = spawn(process.execPath, process.argv.slice(1), {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...successorEnv(), [UPGRADE_ENV]: String(process.pid) },
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    let borrowed: HandedListener[] | undefined;
    const giveBack = () => {
      if (borrowed !== undefined) handover.giveBack?.(borrowed);
      borrowed = undefined;
    };
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      giveBack();
      clearTimeout(timer);
      child.off('exit', onExit);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else {
        resolve(child);
      }
    };
    const timer = setTimeout(() => settle(new Error(`the new process was not ready within ${deadlineMs}ms`)), deadlineMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => settle(new Error(`the new process exited before it was ready (${signal ?? `code ${code}`})`));
    child.once('exit', onExit);
    child.on('error', (err) => settle(err));
    child.on('message', (msg: ChildMessage) => {
      if (msg.type === 'upgrade-config-request') {
        child.send({ type: 'upgrade-config', config: handover.config ?? null } satisfies ParentMessage);
      } else if (msg.type === 'upgrade-hello') {
        void (async () => {
          const lent = handover.borrow ? await handover.borrow() : [];
          if (settled) return handover.giveBack?.(lent);
          borrowed = lent;
          for (const l of [...handover.listeners, ...lent]) child.send({ type: 'upgrade-listener', name: l.name, key: l.key } satisfies ParentMessage, l.server);
          if (handover.admin) child.send({ type: 'upgrade-admin' } satisfies ParentMessage, handover.admin);
          child.send({ type: 'upgrade-done' } satisfies ParentMessage);
        })();
      } else if (msg.type === 'upgrade-received') {
        giveBack();
      } else if (msg.type === 'upgrade-ready') {
        giveBack();
        // The channel stays open for connection migration (keepChannel); the caller closes it.
        if (!keepChannel) child.disconnect();
        child.unref();
        settle();
      }
    });
  });
}

/** New side: true when started by an upgrading process. */
export function isSuccessor(): boolean {
  return process.env[UPGRADE_ENV] !== undefined && typeof process.send === 'function';
}

/**
 * New side, run by xDS: asks the old process for the config its control plane made (null: none
 * yet). Asked before anything starts, as it is this process's first generation.
 */
export function receiveRunningConfig(timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('no running config from the old process in time'));
    }, timeoutMs);
    const onMessage = (msg: ParentMessage) => {
      if (msg.type !== 'upgrade-config') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(msg.config);
    };
    process.on('message', onMessage);
    process.send!({ type: 'upgrade-config-request' } satisfies ChildMessage);
  });
}

/** New side: asks the old process for its listening sockets. */
export function receiveHandover(timeoutMs = 10_000): Promise<Handover> {
  return new Promise((resolve, reject) => {
    const handover: Handover = { listeners: [], admin: undefined };
    const timer = setTimeout(() => reject(new Error('no listening sockets from the old process in time')), timeoutMs);
    const onMessage = (msg: ParentMessage, handle: unknown) => {
      if (msg.type === 'upgrade-listener') {
        // Node's IPC hands us a plain net.Server already accepting on the socket. Until the
        // acceptor adopts it, connections are kept untouched (paused, so still transferable).
        const server = handle as net.Server & { pauseOnConnect: boolean; allowHalfOpen: boolean };
        server.pauseOnConnect = true;
        server.allowHalfOpen = true;
        const early: net.Socket[] = [];
        server.on('connection', (s) => early.push(s));
        handover.listeners.push({ name: msg.name, key: msg.key, server, early });
      }
      else if (msg.type === 'upgrade-admin') handover.admin = handle as net.Server;
      else if (msg.type === 'upgrade-done') {
        clearTimeout(timer);
        process.off('message', onMessage);
        process.send!({ type: 'upgrade-received' } satisfies ChildMessage);
        resolve(handover);
      }
    };
    process.on('message', onMessage);
    process.send!({ type: 'upgrade-hello' } satisfies ChildMessage);
  });
}

/**
 * New side: tells the old process it serves now. The old process closes the channel, after
 * moving its connections here (connection migration) or at once.
 */
export function announceReady(): void {
  process.send?.({ type: 'upgrade-ready', pid: process.pid } satisfies ChildMessage);
}
