/**
 * Per-worker HTTP/1.1 upstream connection pool for one host: keep-alive reuse (most recently used
 * first), a cap on connections, a bounded queue of waiting requests, an idle timeout, and a cap
 * on requests per connection. A connection is only given back as reusable by its user when the
 * response was read to its end and the request written to its end; anything else is destroyed.
 *
 *   acquire ─▶ idle connection? ─yes─▶ use
 *                 │ no
 *                 ├─ under max_connections ─▶ connect (timeout) ─▶ use
 *                 └─ else queue (≤ max_pending) ─▶ next release ─▶ use
 */
import net from 'node:net';
import type { Host } from '../cluster/host.ts';
import type { z } from 'zod';
import type { connectionPool } from '../config/route-schema.ts';
import { ShuttleError } from '../errors.ts';
import { Deadline, deadlines } from './deadlines.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';

export type PoolConfig = z.output<typeof connectionPool>;

/**
 * One read buffer for every upstream socket of this thread (Node's `onread`): reads are handled
 * one at a time, so a read needs no Buffer, ArrayBuffer or stream bookkeeping of its own. Users
 * get a view that is overwritten by the next read: whatever they keep, they copy.
 */
const UPSTREAM_READ_BYTES = 64 * 1024;
const upstreamReadBuffer = Buffer.allocUnsafeSlow(UPSTREAM_READ_BYTES);

/** Who is using a connection: gets its bytes and its end. */
export interface ConnectionUser {
  /** Bytes from the upstream: a view of a reused read buffer, valid only during this call. */
  onData(chunk: Buffer): void;
  onEnd(): void;
  onClose(error: Error | undefined): void;
}

export class UpstreamConnection {
  readonly socket: net.Socket;
  readonly host: Host;
  requests = 0;
  user: ConnectionUser | undefined;
  private readonly idleTimer = new Deadline(() => this.socket.destroy());
  private readonly pool: Http1Pool;
  private closeError: Error | undefined;

  constructor(socket: net.Socket, host: Host, pool: Http1Pool) {
    this.socket = socket;
    this.host = host;
    this.pool = pool;
    socket.on('end', () => {
      if (this.user) this.user.onEnd();
      else socket.destroy();
    });
    socket.on('error', (err) => (this.closeError = err));
    socket.once('close', () => {
      this.idleTimer.cancel();
      pool.removed(this);
      const user = this.user;
      this.user = undefined;
      user?.onClose(this.closeError);
    });
  }

  /** Bytes read (see upstreamReadBuffer). */
  onRead(bytes: number): void {
    if (this.user) this.user.onData(upstreamReadBuffer.subarray(0, bytes));
    else this.socket.destroy(); // bytes on an idle connection: the upstream broke the protocol
  }

  /** A fresh connection has served no request yet; a failure on a reused one may be a stale keep-alive. */
  get reused(): boolean {
    return this.requests > 1;
  }

  idle(timeoutMs: number): void {
    this.user = undefined;
    if (timeoutMs > 0) this.idleTimer.arm(deadlines.queue(timeoutMs));
  }

  /** Gives the connection back to its pool: reusable only if both messages went to their ends. */
  release(reusable: boolean): void {
    this.pool.release(this, reusable);
  }

  take(user: ConnectionUser): void {
    this.idleTimer.cancel();
    this.user = user;
    this.requests++;
  }
}

interface Waiter {
  cb: (err: ShuttleError | undefined, conn?: UpstreamConnection) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Http1Pool {
  readonly host: Host;
  private readonly config: PoolConfig;
  private readonly connectTimeout: number;
  private readonly telemetry: WorkerTelemetry;
  private readonly idleConnections: UpstreamConnection[] = [];
  private readonly waiters: Waiter[] = [];
  private total = 0;
  private draining = false;

  constructor(host: Host, config: PoolConfig, connectTimeout: number, telemetry: WorkerTelemetry) {
    this.host = host;
    this.config = config;
    this.connectTimeout = connectTimeout;
    this.telemetry = telemetry;
  }

  /** Gives a connection to `cb`, now or when one frees up. Returns a function that cancels the wait. */
  acquire(cb: (err: ShuttleError | undefined, conn?: UpstreamConnection) => void, waitTimeoutMs: number): () => void {
    let conn: UpstreamConnection | undefined;
    while ((conn = this.idleConnections.pop())) {
      if (!conn.socket.destroyed && conn.socket.readable) {
        cb(undefined, conn);
        return () => {};
      }
    }
    if (this.total < this.config.max_connections_per_host) {
      this.connect(cb);
      return () => {};
    }
    if (this.waiters.length >= this.config.max_pending_requests) {
      cb(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `connection pool for ${this.host.address} is full (${this.total} connections, ${this.waiters.length} waiting)`));
      return () => {};
    }
    const waiter: Waiter = { cb, timer: undefined };
    if (waitTimeoutMs > 0) {
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        cb(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `no connection to ${this.host.address} became free in ${waitTimeoutMs}ms`));
      }, waitTimeoutMs);
    }
    this.waiters.push(waiter);
    return () => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) {
        this.waiters.splice(i, 1);
        clearTimeout(waiter.timer);
      }
    };
  }

  /** Gives a connection back: reusable only if both messages were written and read to their ends. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    const max = this.config.max_requests_per_connection;
    if (!reusable || this.draining || conn.socket.destroyed || (max > 0 && conn.requests >= max)) {
      conn.user = undefined;
      conn.socket.destroy();
      this.serveWaiter();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.cb(undefined, conn);
      return;
    }
    conn.idle(this.config.idle_timeout);
    this.idleConnections.push(conn);
  }

  /** Called by a connection when its socket closed. */
  removed(conn: UpstreamConnection): void {
    this.total--;
    this.telemetry.upstreamClosed(this.host);
    this.host.activeConnections--;
    const i = this.idleConnections.indexOf(conn);
    if (i >= 0) this.idleConnections.splice(i, 1);
    this.serveWaiter();
  }

  /** Closes idle connections and stops reusing the others (config change, drain). */
  drain(): void {
    this.draining = true;
    for (const c of this.idleConnections.splice(0)) c.socket.destroy();
  }

  private serveWaiter(): void {
    if (this.waiters.length > 0 && this.total < this.config.max_connections_per_host) {
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      this.connect(waiter.cb);
    }
  }

  private connect(cb: (err: ShuttleError | undefined, conn?: UpstreamConnection) => void): void {
    const host = this.host;
    this.total++;
    host.activeConnections++;
    this.telemetry.upstreamConnecting(host);
    let conn: UpstreamConnection | undefined;
    const socket = net.connect({
      host: host.host,
      port: host.port,
      noDelay: true,
      onread: {
        buffer: upstreamReadBuffer,
        callback: (bytes: number): boolean => {
          if (conn) conn.onRead(bytes);
          else socket.destroy();
          return true;
        },
      },
    });
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy(new ShuttleError('SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT', 'upstream', `connect to ${host.address} timed out after ${this.connectTimeout}ms`, { retryable: true }));
    }, this.connectTimeout);
    const onError = (err: Error) => {
      clearTimeout(timer);
      if (connected) return;
      const error = err instanceof ShuttleError ? err : new ShuttleError('SHUTTLE_E_UPSTREAM_CONNECT_FAILED', 'upstream', `connect to ${host.address} failed: ${err.message}`, { cause: err, retryable: true });
      this.telemetry.upstreamConnectFailed(host, error.code === 'SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT');
      cb(error);
    };
    socket.once('error', onError);
    socket.once('close', () => {
      if (connected) return;
      this.total--;
      host.activeConnections--;
      this.telemetry.upstreamClosed(host);
      this.serveWaiter();
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      connected = true;
      socket.off('error', onError);
      this.telemetry.upstreamConnected(host);
      conn = new UpstreamConnection(socket, host, this);
      cb(undefined, conn);
    });
  }
}
