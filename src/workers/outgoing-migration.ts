/**
 * A worker's side of connection migration in the old process (see upgrade/migration.ts): asks
 * each open connection to reach its safe point, posts the ready ones' descriptors to the main
 * thread, and lets go of each once the new process serves it. A connection that cannot move, or
 * does not reach its safe point within the window, drains as before.
 *
 *   waiting (for a safe point) ──ready──▶ posted (descriptor with the main thread)
 *        │ refused, window over               │ commit: gone from here    rollback: served here
 *        ▼                                    ▼
 *      drain()                              settled once nothing waits and nothing is posted
 */
import type { Logger } from '../log/logger.ts';
import { socketFd, type FallbackReason, type Migratable, type MigrationReady } from '../upgrade/migration.ts';
import type { WorkerToMain } from './messages.ts';

interface Connection {
  drain(): void;
}

export class OutgoingMigration {
  private readonly waiting = new Map<Connection, () => void>();
  private readonly posted = new Map<number, { conn: Connection; ready: MigrationReady }>();
  private seq = 0;
  private windowTimer: NodeJS.Timeout | undefined;
  private settledSent = false;
  /** Migration is under way (from 'migrate' until an abort). */
  active = false;
  private readonly send: (msg: WorkerToMain) => void;
  private readonly logger: Logger;

  constructor(send: (msg: WorkerToMain) => void, logger: Logger) {
    this.send = send;
    this.logger = logger;
  }

  start(connections: Iterable<Connection>, windowMs: number): void {
    const startedAt = performance.now();
    // Not active while starting: a connection that answers at once must not settle the others.
    for (const c of [...connections]) this.begin(c, startedAt);
    this.active = true;
    this.windowTimer = setTimeout(() => {
      for (const [c, cancel] of [...this.waiting]) {
        this.waiting.delete(c);
        cancel();
        this.fallBack(c, 'deadline');
      }
      this.checkSettled();
    }, windowMs);
    this.windowTimer.unref();
    this.checkSettled();
  }

  /** Connections that still belong here while migration runs (the worker must not exit yet). */
  get outstanding(): number {
    return this.waiting.size + this.posted.size;
  }

  commit(seq: number): void {
    const p = this.posted.get(seq);
    if (!p) return;
    this.posted.delete(seq);
    p.ready.commit();
    this.checkSettled();
  }

  rollback(seq: number): void {
    const p = this.posted.get(seq);
    if (!p) return;
    this.posted.delete(seq);
    p.ready.rollback();
    this.fallBack(p.conn, 'refused');
    this.checkSettled();
  }

  /** The new process is gone: every connection not moved yet is served here again, as if nothing happened. */
  abort(): void {
    this.active = false;
    clearTimeout(this.windowTimer);
    for (const [c, cancel] of [...this.waiting]) {
      this.waiting.delete(c);
      cancel();
    }
    for (const p of this.posted.values()) p.ready.rollback();
    this.logger.warn({ rolled_back: this.posted.size }, 'connection migration aborted: the new process is gone; connections not moved yet are served here');
    this.posted.clear();
  }

  /** The connection is on its way to the new process: only a rollback gives it back. */
  holds(c: Connection): boolean {
    for (const p of this.posted.values()) if (p.conn === c) return true;
    return false;
  }

  /** A connection closed (its client left, or a drain deadline). */
  forget(c: Connection): void {
    if (this.waiting.delete(c)) this.checkSettled();
    for (const [seq, p] of this.posted) {
      if (p.conn !== c) continue;
      this.posted.delete(seq);
      this.checkSettled();
    }
  }

  private begin(c: Connection, startedAt: number): void {
    const m = c as Partial<Migratable>;
    if (typeof m.startMigration !== 'function') return this.fallBack(c, 'unsupported');
    let answered = false;
    let registered = false;
    const cancel = m.startMigration((result) => {
      answered = true;
      // Waiting no more: cancelled meanwhile (window over, aborted): nothing to do.
      if (registered && !this.waiting.delete(c)) return;
      if (typeof result === 'string') this.fallBack(c, result);
      else this.post(c, result, startedAt);
      this.checkSettled();
    });
    if (!answered) {
      this.waiting.set(c, cancel);
      registered = true;
    }
  }

  private post(conn: Connection, ready: MigrationReady, startedAt: number): void {
    const fds = ready.sockets.map(socketFd);
    if (fds.some((fd) => fd < 0)) {
      ready.rollback();
      return this.fallBack(conn, 'unsupported');
    }
    const seq = ++this.seq;
    this.posted.set(seq, { conn, ready });
    this.send({ type: 'migrate-out', seq, fds, state: ready.state, waitedMs: performance.now() - startedAt });
  }

  private fallBack(c: Connection, reason: FallbackReason): void {
    this.send({ type: 'migrate-fallback', reason });
    if (reason !== 'closed') c.drain();
  }

  private checkSettled(): void {
    if (!this.active || this.settledSent || this.outstanding > 0) return;
    this.settledSent = true;
    clearTimeout(this.windowTimer);
    this.send({ type: 'migrate-settled' });
  }
}
