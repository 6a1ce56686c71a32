/**
 * The old process's main thread in a connection migration (see migration.ts): relays each ready
 * connection's descriptors from its worker to the new process, and the new process's answer back
 * to the worker (commit or rollback). If the new process goes away before every connection has
 * settled, the migration is aborted: workers serve what they still hold, as before the upgrade.
 */
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import type { WorkerPool } from '../acceptor/worker-pool.ts';
import type { Logger } from '../log/logger.ts';
import type { WorkerToMain } from '../workers/messages.ts';
import type { FallbackReason, MigratedState, MigrationSummary, NewToOld, OldToNew } from './migration.ts';

const MAX_SAMPLES = 10_000;

interface Posted {
  slot: number;
  seq: number;
  /** No answer from the new process in time: the connection stays here. */
  timer: NodeJS.Timeout;
  /** From the migration's start to the connection's safe point (worker time). */
  waitedMs: number;
  sentAt: number;
}

export interface MigrationOutcome extends MigrationSummary {
  /** The new process went away before the end: connections not moved stay here. */
  aborted: boolean;
}

export class MigrationRelay {
  private readonly child: ChildProcess;
  private readonly pool: WorkerPool;
  private readonly logger: Logger;
  private readonly posted = new Map<string, Posted>();
  /**
   * Handles wrapping the workers' descriptors, only to send them. Never closed: the descriptor
   * is the worker's (closing it here would close it under the worker's socket).
   */
  private readonly wrappers: net.Socket[] = [];
  private readonly summary: MigrationOutcome = { migrated: 0, fallbacks: {}, seconds: [], aborted: false };

  constructor(child: ChildProcess, pool: WorkerPool, logger: Logger) {
    this.child = child;
    this.pool = pool;
    this.logger = logger;
  }

  /** How long the new process may take to answer for one connection. */
  private answerTimeoutMs = 10_000;

  async run(windowMs: number): Promise<MigrationOutcome> {
    this.answerTimeoutMs = Math.max(windowMs, 1_000);
    let abort: () => void = () => {};
    const gone = new Promise<void>((resolve) => (abort = resolve));
    const onGone = () => abort();
    const onAnswer = (msg: NewToOld) => {
      if (msg?.type === 'migrate-adopted') this.answered(msg);
    };
    this.child.once('exit', onGone);
    this.child.once('disconnect', onGone);
    this.child.on('message', onAnswer);
    this.pool.onMigration = (slot, msg) => this.fromWorker(slot, msg);
    try {
      const settled = this.pool.migrate(windowMs).then(() => 'settled' as const);
      const outcome = await Promise.race([settled, gone.then(() => 'gone' as const)]);
      if (outcome === 'gone') {
        this.summary.aborted = true;
        for (const p of this.posted.values()) clearTimeout(p.timer);
        this.posted.clear();
        this.pool.abortMigration();
      }
    } finally {
      this.child.off('exit', onGone);
      this.child.off('disconnect', onGone);
      this.child.off('message', onAnswer);
      this.pool.onMigration = undefined;
    }
    return this.summary;
  }

  private fromWorker(slot: number, msg: WorkerToMain): void {
    if (msg.type === 'migrate-fallback') {
      const f = this.summary.fallbacks;
      f[msg.reason] = (f[msg.reason] ?? 0) + 1;
    } else if (msg.type === 'migrate-out') {
      this.send(slot, msg.seq, msg.fds, msg.state, msg.waitedMs);
    }
  }

  private send(slot: number, seq: number, fds: number[], state: MigratedState, waitedMs: number): void {
    const id = `${slot}.${seq}`;
    if (this.summary.aborted || !this.child.connected) return this.pool.postTo(slot, { type: 'migrate-rollback', seq });
    const timer = setTimeout(() => {
      this.logger.warn({ id }, 'connection migration: no answer from the new process in time; the connection stays here');
      this.refused(id);
    }, this.answerTimeoutMs);
    timer.unref();
    this.posted.set(id, { slot, seq, waitedMs, sentAt: performance.now(), timer });
    fds.forEach((fd, index) => {
      let wrapper: net.Socket;
      try {
        wrapper = new net.Socket({ fd, readable: false, writable: false });
      } catch (err) {
        this.logger.error({ err, fd }, 'connection migration: descriptor not usable; the connection stays');
        return this.refused(id);
      }
      this.wrappers.push(wrapper);
      const handle = (wrapper as unknown as { _handle: object })._handle;
      const msg: OldToNew = { type: 'migrate-connection', id, index, count: fds.length, state };
      // keepOpen: Node must not close the handle after sending (the descriptor is the worker's).
      this.child.send(msg, handle as net.Socket, { keepOpen: true }, (err) => {
        if (err) this.refused(id);
      });
    });
  }

  private answered(msg: Extract<NewToOld, { type: 'migrate-adopted' }>): void {
    const p = this.posted.get(msg.id);
    if (!p) return;
    if (!msg.ok) {
      this.logger.warn({ id: msg.id, error: msg.error }, 'connection migration: the new process refused a connection; it drains here');
      return this.refused(msg.id);
    }
    this.posted.delete(msg.id);
    clearTimeout(p.timer);
    this.summary.migrated++;
    if (this.summary.seconds.length < MAX_SAMPLES) this.summary.seconds.push((p.waitedMs + performance.now() - p.sentAt) / 1000);
    this.pool.postTo(p.slot, { type: 'migrate-commit', seq: p.seq });
  }

  private refused(id: string): void {
    const p = this.posted.get(id);
    if (!p) return;
    this.posted.delete(id);
    clearTimeout(p.timer);
    this.pool.postTo(p.slot, { type: 'migrate-rollback', seq: p.seq });
  }
}

/** How many connections drained instead of moving, all reasons together (for the log). */
export function fallbackTotal(f: Partial<Record<FallbackReason, number>>): number {
  return Object.values(f).reduce((a, b) => a + (b ?? 0), 0);
}
