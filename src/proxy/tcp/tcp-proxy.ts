/**
 * The L4 proxy for one downstream connection:
 *
 *   downstream ──accept──▶ [connect: lb.choose → host, timeout, next host on failure]
 *                                   │
 *              ◀──── pipe both ways, backpressure, half-close, idle timeout ────▶ upstream
 *                                   │
 *              close: error on either side resets both; a clean close flushes the other side
 *              then closes it; one access-log line when both are gone.
 */
import type net from 'node:net';
import { connectUpstream } from '../../stream/connector.ts';
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { ListenerConfig } from '../../config/schema.ts';
import { ShuttleError, type ErrorCode } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import { H, L } from '../../shared/stats-table.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';
import { isTlsSocket, resumeReading, stopReading, whenFlushed, type Migratable, type MigrationDone } from '../../upgrade/migration.ts';
import { Direction } from './relay.ts';
import { hashKey } from '../../cluster/consistent-hash.ts';

export interface TcpProxyOptions {
  readonly id: string;
  readonly listener: ListenerConfig;
  /** The listener's position in the config: its stats row offset. */
  readonly listenerIndex: number;
  readonly cluster: Cluster;
  readonly logger: Logger;
  readonly telemetry: WorkerTelemetry;
  /** Called once, after both sockets are closed. */
  readonly onClose: (session: TcpProxySession) => void;
  /** Bytes already read from the client (a ClientHello read for its server name): sent first. */
  readonly initial?: Buffer;
  /** The TLS server name (passthrough or terminated), for the access log. */
  readonly sni?: string;
  /** A session moved here from the process this one upgraded: its upstream is connected already. */
  readonly adopted?: { upstream: net.Socket; host: Host | undefined };
}

export class TcpProxySession implements Migratable {
  readonly id: string;
  private readonly opts: TcpProxyOptions;
  private readonly downstream: net.Socket;
  private upstream: net.Socket | undefined;
  /** The upstream socket while its connect is in flight. */
  private connecting: net.Socket | undefined;
  private host: Host | undefined;
  private readonly tried = new Set<Host>();
  private readonly startedAt = performance.now();
  private error: ShuttleError | undefined;
  private openSockets = 1;
  /** Captured at start: a closed socket no longer knows its peer. */
  private peer = '';
  private finished = false;
  /** Moved to the new process: closing our sockets must not touch the connections. */
  private migrated = false;
  /** Bytes from the client and to it (the access log's counts). */
  private received = 0;
  private sent = 0;
  /** Both directions, when the sockets take the relay (else they are piped). */
  private relay: [Direction, Direction] | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(downstream: net.Socket, opts: TcpProxyOptions) {
    this.id = opts.id;
    this.opts = opts;
    this.downstream = downstream;
  }

  start(): void {
    const down = this.downstream;
    down.allowHalfOpen = true;
    this.peer = `${down.remoteAddress}:${down.remotePort}`;
    down.setNoDelay(true);
    down.on('error', (err) => this.abort(new ShuttleError('SHUTTLE_E_DOWNSTREAM_RESET', 'downstream', err.message, { cause: err })));
    down.once('close', () => this.socketClosed(down));
    this.opts.telemetry.downstreamOpened(this.opts.listenerIndex);
    const adopted = this.opts.adopted;
    if (adopted) {
      adopted.upstream.allowHalfOpen = true;
      adopted.upstream.setNoDelay(true);
      if (adopted.host) this.tried.add(adopted.host);
      this.established(adopted.upstream, adopted.host);
    } else {
      this.connectNext();
    }
  }

  /**
   * Connection migration: reading stops both ways, what was read is written on, both sockets
   * flush; then both connections move (the upstream one too: the upstream sees nothing).
   */
  startMigration(done: MigrationDone): () => void {
    const down = this.downstream;
    const up = this.upstream;
    if (isTlsSocket(down) || (up !== undefined && isTlsSocket(up))) return refuse(done, 'tls');
    if (up === undefined) return refuse(done, 'connecting');
    if (this.error || down.readableEnded || up.readableEnded || down.writableEnded || up.writableEnded) return refuse(done, 'half_closed');
    const relay = this.relay;
    if (relay) {
      // Reading stops both ways; a write in flight completes; then both connections move.
      for (const d of relay) d.hold();
      return this.moveWhenFlushed(done, () => relay[0].pendingWrites + relay[1].pendingWrites, () => {
        for (const d of relay) d.release();
      });
    }
    down.unpipe(up);
    up.unpipe(down);
    stopReading(down);
    stopReading(up);
    forwardBuffered(down, up);
    forwardBuffered(up, down);
    const serveHere = () => {
      resumeReading(down, false);
      resumeReading(up, false);
      down.pipe(up);
      up.pipe(down);
    };
    return this.moveWhenFlushed(done, () => 0, serveHere);
  }

  /** Once nothing of ours waits to be written, hands both sockets over (or serves here again). */
  private moveWhenFlushed(done: MigrationDone, pending: () => number, serveHere: () => void): () => void {
    const down = this.downstream;
    const up = this.upstream!;
    const cancelFlush = whenFlushed([down, up], pending, (ok) => {
      if (!ok) return done('closed');
      done({
        sockets: [down, up],
        state: { kind: 'tcp', listener: this.opts.listener.name, cluster: this.opts.cluster.name, upstream: this.host?.address ?? '', sni: this.opts.sni },
        commit: () => {
          this.migrated = true;
          clearTimeout(this.idleTimer);
          down.destroy();
          up.destroy();
        },
        rollback: serveHere,
      });
    });
    return () => {
      cancelFlush();
      serveHere();
    };
  }

  /** L4 has no request boundary: a draining TCP connection runs until its peers close it. */
  drain(): void {}

  /** Closes both sides now. A reset on one side is passed to the other as a reset (RST). */
  abort(error: ShuttleError): void {
    this.error ??= error;
    close(this.downstream, error.code === 'SHUTTLE_E_UPSTREAM_RESET');
    this.connecting?.destroy();
    if (this.upstream) close(this.upstream, error.code === 'SHUTTLE_E_DOWNSTREAM_RESET');
  }

  private connectNext(): void {
    const { cluster, listener } = this.opts;
    // A consistent-hash cluster keeps a client on one host: L4 hashes the client's address.
    const host = cluster.lb.choose(this.tried, cluster.lb.needsHash ? hashKey(this.downstream.remoteAddress ?? '') : undefined);
    if (!host) {
      // Every host was tried (or none is healthy): the last connect error, if any, says why.
      if (!this.error) this.opts.telemetry.noHealthyHost(cluster.index);
      this.abort(this.error ?? new ShuttleError('SHUTTLE_E_NO_HEALTHY_HOST', 'internal', `cluster ${cluster.name} has no host to connect to`));
      return;
    }
    this.tried.add(host);
    this.connecting = connectUpstream(host, this.opts.telemetry, { timeoutMs: cluster.config.connect_timeout, allowHalfOpen: true, tls: cluster.tls }, (err, sock) => {
      this.connecting = undefined;
      if (err) {
        this.error = err;
        this.opts.logger.debug({ conn: this.id, upstream: host.address, err: err.message }, 'upstream connect failed');
        if (this.downstream.destroyed) return;
        if (this.tried.size < listener.max_connect_attempts && this.tried.size < cluster.hosts.length) this.connectNext();
        else this.abort(err);
        return;
      }
      this.error = undefined; // an earlier host's failure is not this connection's outcome
      this.established(sock!, host);
    });
  }

  private established(up: net.Socket, host: Host | undefined): void {
    const down = this.downstream;
    this.upstream = up;
    this.host = host;
    this.openSockets++;
    up.on('error', (err) => this.abort(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', err.message, { cause: err })));
    up.once('close', () => this.socketClosed(up));
    // Byte counters, on the worker's own stats row.
    const row = this.opts.telemetry.row;
    const listenerBase = this.opts.telemetry.layout.listener(this.opts.listenerIndex);
    // (A moved session whose upstream is not in this config any more counts no host bytes.)
    const hostBase = host !== undefined ? this.opts.telemetry.layout.host(host.index) : -1;
    const upTx = hostBase >= 0 ? hostBase + H.upstream_cx_tx_bytes_total : -1;
    const upRx = hostBase >= 0 ? hostBase + H.upstream_cx_rx_bytes_total : -1;
    const received = (n: number) => {
      this.received += n;
      row[listenerBase + L.downstream_cx_rx_bytes_total] += n;
      if (upTx >= 0) row[upTx] += n;
    };
    const sent = (n: number) => {
      this.sent += n;
      row[listenerBase + L.downstream_cx_tx_bytes_total] += n;
      if (upRx >= 0) row[upRx] += n;
    };
    const initial = this.opts.initial;
    if (initial !== undefined) {
      received(initial.length);
      up.write(initial);
    }
    const upward = new Direction(down, up, received);
    const downward = new Direction(up, down, sent);
    if (upward.canStart() && downward.canStart()) {
      upward.start();
      downward.start();
      this.relay = [upward, downward];
      this.armIdleTimer();
      return;
    }
    // TLS (upstream) or no socket internals: the stream API. Every byte either way is written to
    // or read from `down`, so its timer sees both directions.
    down.setTimeout(this.opts.listener.idle_timeout, () => this.abort(new ShuttleError('SHUTTLE_E_IDLE_TIMEOUT', 'internal')));
    down.on('data', (chunk: Buffer) => received(chunk.length));
    up.on('data', (chunk: Buffer) => sent(chunk.length));
    down.pipe(up);
    up.pipe(down);
  }

  /**
   * The relay's idle timer: one timer per session, which looks at the byte counts when it fires
   * (the sockets' own timers would not see bytes written straight to a handle). It looks four
   * times per idle_timeout, so a session idle that long closes within a quarter of it more.
   */
  private armIdleTimer(): void {
    const idleMs = this.opts.listener.idle_timeout;
    const step = Math.max(1, Math.floor(idleMs / 4));
    let seen = -1;
    let quietSince = performance.now();
    const check = () => {
      const moved = this.received + this.sent;
      const now = performance.now();
      if (moved !== seen) {
        seen = moved;
        quietSince = now;
      } else if (now - quietSince >= idleMs) {
        return this.abort(new ShuttleError('SHUTTLE_E_IDLE_TIMEOUT', 'internal'));
      }
      this.idleTimer = setTimeout(check, Math.min(step, idleMs - (now - quietSince)));
    };
    check();
  }

  private socketClosed(which: net.Socket): void {
    this.openSockets--;
    if (this.migrated) return this.finishIfDone();
    if (which === this.downstream) this.connecting?.destroy();
    const other = which === this.downstream ? this.upstream : this.downstream;
    if (other && !other.destroyed) {
      // A reset is passed on as a reset; a clean close lets the other side flush what it has.
      if (this.error) other.destroy();
      else other.destroySoon();
    }
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (this.finished || this.openSockets > 0) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.opts.telemetry.downstreamClosed(this.opts.listenerIndex);
    const down = this.downstream;
    const code: ErrorCode | undefined = this.error?.code;
    if (this.opts.listener.access_log) this.opts.logger.info({
      msg: 'access',
      conn: this.id,
      listener: this.opts.listener.name,
      downstream: this.peer,
      cluster: this.opts.cluster.name,
      upstream: this.host?.address ?? null,
      sni: this.opts.sni ?? null,
      attempts: this.tried.size,
      bytes_received: this.relay ? this.received : down.bytesRead,
      bytes_sent: this.relay ? this.sent : down.bytesWritten,
      duration_ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
      error: code ?? null,
      ...(this.migrated ? { migrated: true } : {}),
    });
    this.opts.onClose(this);
  }
}

function close(socket: net.Socket, reset: boolean): void {
  if (socket.destroyed) return;
  if (reset) socket.resetAndDestroy();
  else socket.destroy();
}

function refuse(done: MigrationDone, reason: 'tls' | 'connecting' | 'half_closed'): () => void {
  done(reason);
  return () => {};
}

/** Bytes read from `from` and not yet written to `to` (a pipe held back by backpressure): written now. */
function forwardBuffered(from: net.Socket, to: net.Socket): void {
  for (let chunk: Buffer | null; from.readableLength > 0 && (chunk = from.read() as Buffer | null) !== null;) to.write(chunk);
}
