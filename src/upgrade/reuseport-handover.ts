/**
 * In-place upgrade in `--balance reuseport` mode: the workers own the listening sockets, so the
 * main thread borrows them to hand copies to the new process, whose workers adopt the copies
 * instead of binding new sockets (why: workers/own-listeners.ts).
 *
 *   old main ── lend-listeners ─▶ old workers ── lent-listeners (sockets transferred) ─▶ old main
 *   old main: what a borrowed socket accepts meanwhile goes to a worker (hand-off, as in handoff mode)
 *   old main ── IPC (handover.ts) ─▶ new main;  new main ── upgrade-received ─▶ old main
 *   old main ── give-back-listeners ─▶ old workers (accept again until the new process is ready)
 *   new main ── listen (copies transferred, spread over the workers) ─▶ new workers ── listening ─▶
 *
 * A reload that replaces the workers (workers.threads changed, replace_on_reload) does the same
 * within the process: the old workers lend, the new ones adopt, nothing is given back.
 */
import type net from 'node:net';
import type { Worker } from 'node:worker_threads';
import type { BoundListener, LentListener, MainToWorker, WorkerToMain } from '../workers/messages.ts';
import type { HandedListener } from './handover.ts';

/** What this needs of the worker pool. */
export interface ListenerPool {
  workerAt(slot: number): Worker | undefined;
  dispatch(listener: string, socket: net.Socket): boolean;
}

/** A running worker and its slot. */
export interface SlotWorker {
  slot: number;
  worker: Worker;
}

/** A socket borrowed from a worker, handed over as any listener is (key: see addressKey). */
export interface BorrowedListener extends HandedListener {
  slot: number;
}

/**
 * Sends `msg` to a worker and resolves with its answer of type `answer` (undefined: it exited, or
 * gave no answer within `timeoutMs`). An answer that comes after the time limit goes to `late`.
 */
function ask<T extends WorkerToMain['type']>(worker: Worker, msg: MainToWorker, transfer: net.Server[], answer: T, timeoutMs: number, late?: (m: Extract<WorkerToMain, { type: T }>) => void): Promise<Extract<WorkerToMain, { type: T }> | undefined> {
  type Answer = Extract<WorkerToMain, { type: T }>;
  return new Promise((resolve) => {
    let timedOut = false;
    const stop = () => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    };
    const onMessage = (m: WorkerToMain) => {
      if (m.type !== answer) return;
      stop();
      if (timedOut) late?.(m as Answer);
      else resolve(m as Answer);
    };
    const onExit = () => {
      stop();
      resolve(undefined);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      resolve(undefined);
      if (!late) stop();
    }, timeoutMs);
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    worker.postMessage(msg, transfer);
  });
}

/**
 * Old side: borrows every worker's sockets. While borrowed, what they accept is handed to the
 * least-loaded worker, so nothing waits in a backlog for long. A worker that does not answer in
 * time keeps its sockets: if they come after all, they go straight back (here they would accept
 * with no one to serve them), and that worker closes them when it drains.
 */
export async function borrowListeners(pool: ListenerPool, from: readonly SlotWorker[], keyOf: (name: string) => string | undefined, timeoutMs = 10_000): Promise<BorrowedListener[]> {
  const borrowOne = async ({ slot, worker }: SlotWorker): Promise<BorrowedListener[]> => {
    const giveBackLate = (m: { listeners: LentListener[] }) => worker.postMessage({ type: 'give-back-listeners', listeners: m.listeners } satisfies MainToWorker, m.listeners.map((l) => l.server));
    const answer = await ask(worker, { type: 'lend-listeners' }, [], 'lent-listeners', timeoutMs, giveBackLate);
    // At once, as each worker answers (a microtask after its message, before any I/O): a socket
    // arrives here already accepting, and a connection with no listener would never be served.
    return (answer?.listeners ?? []).map(({ name, server }) => {
      const s = server as net.Server & { pauseOnConnect: boolean };
      s.pauseOnConnect = true; // untouched, so transferable to a worker
      server.on('connection', (socket: net.Socket) => pool.dispatch(name, socket));
      return { name, key: keyOf(name) ?? '', server, slot };
    });
  };
  return (await Promise.all(from.map(borrowOne))).flat();
}

/** Old side: gives borrowed sockets back to their workers (a slot whose worker is gone: closed here). */
export function giveBackListeners(pool: ListenerPool, borrowed: readonly BorrowedListener[]): void {
  const bySlot = new Map<number, LentListener[]>();
  for (const b of borrowed) {
    b.server.removeAllListeners('connection');
    bySlot.set(b.slot, [...(bySlot.get(b.slot) ?? []), { name: b.name, server: b.server }]);
  }
  for (const [slot, listeners] of bySlot) {
    const worker = pool.workerAt(slot);
    if (!worker) {
      for (const l of listeners) l.server.close();
      continue;
    }
    worker.postMessage({ type: 'give-back-listeners', listeners } satisfies MainToWorker, listeners.map((l) => l.server));
  }
}

/**
 * New side: spreads the old process's sockets over workers started with deferListen (round robin:
 * with fewer threads than before a worker serves several) and has every worker serve every
 * listener, binding a new socket where it got none. Sockets `wanted` refuses (listeners the config
 * no longer has, or moved) are closed here: the old process still holds them until it drains.
 * Resolves with what the first worker listens on.
 */
export async function listenInherited(pool: ListenerPool, members: readonly SlotWorker[], handed: readonly HandedListener[], wanted: (h: HandedListener) => boolean, timeoutMs = 30_000): Promise<BoundListener[]> {
  const shares: LentListener[][] = members.map(() => []);
  /** Per listener, the worker its next socket goes to (each worker gets one of each first). */
  const next = new Map<string, number>();
  for (const h of handed) {
    h.server.removeAllListeners('connection');
    for (const s of h.early ?? []) {
      if (wanted(h)) pool.dispatch(h.name, s);
      else s.destroy();
    }
    if (!wanted(h) || members.length === 0) {
      h.server.close();
      continue;
    }
    const i = next.get(h.name) ?? 0;
    next.set(h.name, i + 1);
    shares[i % members.length].push({ name: h.name, server: h.server });
  }
  const answers = await Promise.all(members.map(({ worker }, i) => ask(worker, { type: 'listen', inherited: shares[i] }, shares[i].map((l) => l.server), 'listening', timeoutMs)));
  if (answers.some((a) => a === undefined)) throw new Error('a worker did not take its listening sockets');
  return answers[0]?.listeners ?? [];
}
