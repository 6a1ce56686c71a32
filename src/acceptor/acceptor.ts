/**
 * The acceptor owns the listening sockets in handoff mode. It accepts with `pauseOnConnect`, so
 * no byte is read on this thread and each socket stays transferable, and passes every connection
 * to the worker pool. (In reuseport mode the workers listen themselves and this is not used.)
 */
import net from 'node:net';
import { formatAddress } from '../config/address.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import type { BoundListener } from '../workers/messages.ts';
import type { HandedListener } from '../upgrade/handover.ts';
import type { WorkerPool } from './worker-pool.ts';
import { acceptHandles, type AcceptedConnection } from './raw-accept.ts';

export class Acceptor {
  private readonly servers = new Map<string, { server: net.Server; bound: BoundListener; key: string }>();
  private readonly pool: WorkerPool;
  private readonly logger: Logger;

  /**
   * While connections migrate in an upgrade, new ones go to the new process: the listening
   * sockets stay open here, so that a rollback finds them (see upgrade/migration.ts).
   */
  diverted: ((listener: string, socket: net.Socket) => void) | undefined;

  constructor(pool: WorkerPool, logger: Logger) {
    this.pool = pool;
    this.logger = logger;
  }

  /**
   * Binds a listener, or adopts `inherited`: a listening socket handed over by the process this
   * one upgrades (never closed and re-bound, so no connection is refused in between).
   */
  listen(listener: ListenerConfig, inherited?: HandedListener): Promise<BoundListener> {
    const dispatch = (conn: AcceptedConnection) => {
      // (A diverted connection is always a socket: acceptHandles' wantSocket below.)
      if (this.diverted) return this.diverted(listener.name, conn as net.Socket);
      if (!this.pool.dispatch(listener.name, conn)) this.logger.warn({ listener: listener.name, error: 'SHUTTLE_E_NO_WORKER' }, 'no worker ready; connection closed');
    };
    if (inherited) return Promise.resolve(this.adopt(listener, inherited, dispatch));
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, dispatch);
      server.once('error', reject);
      const onListening = () => {
        server.off('error', reject);
        // Accept errors (EMFILE and the like) are transient: log them and keep listening.
        server.on('error', (err) => this.logger.error({ err, listener: listener.name }, 'listener error'));
        this.acceptHandles(server, dispatch);
        const a = server.address() as net.AddressInfo;
        const bound = { name: listener.name, address: formatAddress({ host: a.address, port: a.port }) };
        this.servers.set(listener.name, { server, bound, key: addressKey(listener) });
        resolve(bound);
      };
      server.listen({ host: listener.address.host, port: listener.address.port, backlog: listener.backlog }, onListening);
    });
  }

  /** Takes over a listening socket handed over in an upgrade, with what it accepted meanwhile. */
  private adopt(listener: ListenerConfig, handed: HandedListener, dispatch: (c: AcceptedConnection) => void): BoundListener {
    const server = handed.server;
    server.removeAllListeners('connection');
    server.on('connection', dispatch);
    this.acceptHandles(server, dispatch);
    server.on('error', (err) => this.logger.error({ err, listener: listener.name }, 'listener error'));
    for (const socket of handed.early?.splice(0) ?? []) dispatch(socket);
    const a = server.address() as net.AddressInfo;
    const bound = { name: listener.name, address: formatAddress({ host: a.address, port: a.port }) };
    this.servers.set(listener.name, { server, bound, key: addressKey(listener) });
    return bound;
  }

  /**
   * Accepted connections reach `dispatch` as bare handles (raw-accept.ts: no `net.Socket` built
   * here only to be transferred), except while diverted, where the new process takes sockets.
   * Without Node's internals for it, they keep coming as 'connection' events.
   */
  private acceptHandles(server: net.Server, dispatch: (c: AcceptedConnection) => void): void {
    acceptHandles(server, dispatch, () => this.diverted !== undefined);
  }

  /** The listening sockets, for handing over to an upgraded process. */
  handles(): { name: string; key: string; server: net.Server }[] {
    return [...this.servers.entries()].map(([name, s]) => ({ name, key: s.key, server: s.server }));
  }

  /** Listeners that are bound now. */
  bound(): BoundListener[] {
    return [...this.servers.values()].map((s) => s.bound);
  }

  /**
   * Reload, first half (before workers get the new config): stop accepting on listeners that are
   * gone. Unchanged listeners are never closed: closing resets their queued connections.
   */
  closeRemoved(next: readonly ListenerConfig[]): void {
    const names = new Set(next.map((l) => l.name));
    for (const [name, s] of this.servers) {
      if (names.has(name)) continue;
      s.server.close();
      this.servers.delete(name);
    }
  }

  /**
   * Reload, second half (after workers have the new config): bind new listeners, and for one
   * whose address changed, bind the new address before closing the old one (no gap).
   */
  async bindNew(next: readonly ListenerConfig[]): Promise<void> {
    for (const l of next) {
      const existing = this.servers.get(l.name);
      if (existing && existing.key === addressKey(l)) continue;
      await this.listen(l);
      existing?.server.close();
    }
  }

  /** Stops accepting on every listener; open connections are the workers' to drain. */
  close(): void {
    for (const s of this.servers.values()) s.server.close();
    this.servers.clear();
  }
}

export function addressKey(l: ListenerConfig): string {
  return `${l.address.host}:${l.address.port}:${l.backlog}`;
}
