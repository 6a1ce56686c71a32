/**
 * A worker's own listening sockets (`--balance reuseport`): each worker binds every listener with
 * SO_REUSEPORT and the kernel spreads connections over the sockets of the group.
 *
 * Why sockets are lent and adopted rather than closed and bound again: closing a reuseport
 * socket resets the connections queued in its accept backlog (Linux without
 * `net.ipv4.tcp_migrate_req`). So at an upgrade the old workers lend their sockets to the main
 * thread (a transfer), which hands copies to the new process (SCM_RIGHTS) and gives them back;
 * the new workers adopt those copies instead of binding new sockets. When the old workers close
 * theirs, the new process still holds every socket, so nothing queued is lost.
 *
 *   old worker ──lend──▶ old main ──IPC──▶ new main ──transfer──▶ new worker (adopt)
 *        ◀──────give back──────┘
 */
import net from 'node:net';
import { formatAddress } from '../config/address.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { BoundListener, LentListener } from './messages.ts';

export class OwnListeners {
  /** Sockets by listener name: usually one; more when this worker adopted several (fewer threads). */
  private readonly byName = new Map<string, net.Server[]>();
  private readonly onConnection: (socket: net.Socket, listener: string) => void;
  private readonly onError: (err: Error, listener: string) => void;

  constructor(onConnection: (socket: net.Socket, listener: string) => void, onError: (err: Error, listener: string) => void) {
    this.onConnection = onConnection;
    this.onError = onError;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Binds a new SO_REUSEPORT socket for `listener` (joining the group: nothing is refused). */
  bind(listener: ListenerConfig): Promise<BoundListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true });
      server.once('error', reject);
      server.listen({ host: listener.address.host, port: listener.address.port, reusePort: true, backlog: listener.backlog }, () => {
        server.off('error', reject);
        resolve(this.adopt(listener.name, server));
      });
    });
  }

  /**
   * Serves a socket that is already listening (given back after a lend, or handed over from the
   * old process). A transferred server arrives without the options it was made with.
   */
  adopt(name: string, server: net.Server): BoundListener {
    const s = server as net.Server & { allowHalfOpen: boolean; noDelay: boolean; pauseOnConnect: boolean };
    s.allowHalfOpen = true;
    s.noDelay = true;
    s.pauseOnConnect = false;
    server.removeAllListeners('connection');
    server.on('connection', (socket: net.Socket) => this.onConnection(socket, name));
    server.on('error', (err) => this.onError(err, name));
    const a = server.address() as net.AddressInfo;
    const address = formatAddress({ host: a.address, port: a.port });
    const servers = this.byName.get(name);
    if (servers) servers.push(server);
    else this.byName.set(name, [server]);
    return { name, address };
  }

  /**
   * Gives up every socket, to be transferred (the objects are unusable here afterwards). Until
   * they come back this worker accepts nothing of its own; the main thread hands their
   * connections to workers meanwhile.
   */
  lend(): LentListener[] {
    const out: LentListener[] = [];
    for (const [name, servers] of this.byName) for (const server of servers) out.push({ name, server });
    this.byName.clear();
    return out;
  }

  /** Takes the sockets of one listener out, open (a moved listener: the new one binds first). */
  detach(name: string): net.Server[] {
    const servers = this.byName.get(name) ?? [];
    this.byName.delete(name);
    return servers;
  }

  /** Closes the sockets of one listener (another process may still hold copies: see the header). */
  close(name: string): void {
    for (const server of this.byName.get(name) ?? []) server.close();
    this.byName.delete(name);
  }

  closeAll(): void {
    for (const name of [...this.byName.keys()]) this.close(name);
  }
}
