/**
 * The new process's main thread in a connection migration (see migration.ts): takes each moved
 * connection's sockets from the IPC channel, hands them to a worker, and tells the old process
 * whether it serves them (then the old one lets go; if not, the old one keeps serving).
 */
import net from 'node:net';
import type { WorkerPool } from '../acceptor/worker-pool.ts';
import type { Logger } from '../log/logger.ts';
import type { MigratedState, MigrationSummary, NewToOld, OldToNew } from './migration.ts';

export interface MigrationStats {
  /** Connections this process took over in its upgrade. */
  adopted: number;
  refused: number;
  /** The old process's summary, once it sent it. */
  summary: MigrationSummary | undefined;
}

/**
 * Fault injection for the rollback test: the new process exits (code 70) when the Nth moved
 * connection arrives, before adopting it, as a crash mid-migration would.
 */
const EXIT_AT = Number(process.env.SHUTTLE_TEST_MIGRATION_EXIT_AT) || 0;

export function receiveMigrations(pool: WorkerPool, logger: Logger, stats: MigrationStats): void {
  let received = 0;
  const parts = new Map<string, { state: MigratedState; sockets: net.Socket[]; count: number }>();
  const answer = (msg: NewToOld) => {
    if (msg.ok) stats.adopted++;
    else stats.refused++;
    if (process.connected) process.send?.(msg);
  };
  pool.onMigration = (_slot, msg) => {
    if (msg.type === 'adopted') answer({ type: 'migrate-adopted', id: msg.id, ok: msg.ok, error: msg.error });
  };
  const onMessage = (msg: OldToNew, handle: unknown) => {
    if (msg?.type === 'migrate-connection') {
      if (!handle) return answer({ type: 'migrate-adopted', id: msg.id, ok: false, error: 'no socket' });
      if (msg.index === 0 && ++received === EXIT_AT) {
        logger.fatal({ received }, 'SHUTTLE_TEST_MIGRATION_EXIT_AT: exiting mid-migration');
        process.exit(70);
      }
      // Untouched and paused, like an accepted socket: transferable to a worker.
      const socket = new net.Socket({ handle, readable: true, writable: true, allowHalfOpen: true, pauseOnCreate: true } as unknown as net.SocketConstructorOpts);
      const p = parts.get(msg.id) ?? { state: msg.state, sockets: [], count: msg.count };
      p.sockets[msg.index] = socket;
      parts.set(msg.id, p);
      if (p.sockets.filter(Boolean).length < p.count) return;
      parts.delete(msg.id);
      if (!pool.adopt(msg.id, p.state, p.sockets)) {
        for (const s of p.sockets) s.destroy();
        answer({ type: 'migrate-adopted', id: msg.id, ok: false, error: 'no worker ready' });
      }
    } else if (msg?.type === 'migrate-fresh') {
      // A connection the old process accepted meanwhile (untouched): served like one accepted here.
      if (!handle) return;
      const socket = new net.Socket({ handle, readable: true, writable: true, allowHalfOpen: true, pauseOnCreate: true } as unknown as net.SocketConstructorOpts);
      if (!pool.dispatch(msg.listener, socket)) logger.warn({ listener: msg.listener, error: 'SHUTTLE_E_NO_WORKER' }, 'no worker ready; connection closed');
    } else if (msg?.type === 'migrate-done') {
      stats.summary = msg.summary;
      logger.info({ migrated: msg.summary.migrated, drained: msg.summary.fallbacks, adopted: stats.adopted }, 'upgrade: connection migration done');
      finish();
    }
  };
  const finish = () => {
    process.off('message', onMessage);
    pool.onMigration = undefined;
    for (const p of parts.values()) for (const s of p.sockets) s?.destroy();
    parts.clear();
    if (process.connected) process.disconnect?.();
  };
  process.on('message', onMessage);
  process.once('disconnect', finish);
}
