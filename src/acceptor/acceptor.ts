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
import type { WorkerPool } from './worker-pool.ts';

export class Acceptor {
  private readonly servers = new Map<string, net.Server>();
  private readonly pool: WorkerPool;
  private readonly logger: Logger;

  constructor(pool: WorkerPool, logger: Logger) {
    this.pool = pool;
    this.logger = logger;
  }

  listen(listener: ListenerConfig): Promise<BoundListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
        if (!this.pool.dispatch(listener.name, socket)) this.logger.warn({ listener: listener.name, error: 'SHUTTLE_E_NO_WORKER' }, 'no worker ready; connection closed');
      });
      server.once('error', reject);
      server.listen({ host: listener.address.host, port: listener.address.port, backlog: listener.backlog }, () => {
        server.off('error', reject);
        // Accept errors (EMFILE and the like) are transient: log them and keep listening.
        server.on('error', (err) => this.logger.error({ err, listener: listener.name }, 'listener error'));
        this.servers.set(listener.name, server);
        const a = server.address() as net.AddressInfo;
        resolve({ name: listener.name, address: formatAddress({ host: a.address, port: a.port }) });
      });
    });
  }

  /** Stops accepting on every listener; open connections are the workers' to drain. */
  close(): void {
    for (const server of this.servers.values()) server.close();
    this.servers.clear();
  }
}
