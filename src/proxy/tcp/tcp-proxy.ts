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
}

export class TcpProxySession {
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
    this.connectNext();
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
    const host = cluster.lb.choose(this.tried);
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

  private established(up: net.Socket, host: Host): void {
    const down = this.downstream;
    this.upstream = up;
    this.host = host;
    this.openSockets++;
    up.on('error', (err) => this.abort(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', err.message, { cause: err })));
    up.once('close', () => this.socketClosed(up));
    // Every byte either way is written to or read from `down`, so its timer sees both directions.
    down.setTimeout(this.opts.listener.idle_timeout, () => this.abort(new ShuttleError('SHUTTLE_E_IDLE_TIMEOUT', 'internal')));
    // Byte counters: a listener of our own beside pipe()'s, on the worker's own stats row.
    const row = this.opts.telemetry.row;
    const listenerBase = this.opts.telemetry.layout.listener(this.opts.listenerIndex);
    const hostBase = this.opts.telemetry.layout.host(host.index);
    const initial = this.opts.initial;
    if (initial !== undefined) {
      row[listenerBase + L.downstream_cx_rx_bytes_total] += initial.length;
      row[hostBase + H.upstream_cx_tx_bytes_total] += initial.length;
      up.write(initial);
    }
    down.on('data', (chunk: Buffer) => {
      row[listenerBase + L.downstream_cx_rx_bytes_total] += chunk.length;
      row[hostBase + H.upstream_cx_tx_bytes_total] += chunk.length;
    });
    up.on('data', (chunk: Buffer) => {
      row[listenerBase + L.downstream_cx_tx_bytes_total] += chunk.length;
      row[hostBase + H.upstream_cx_rx_bytes_total] += chunk.length;
    });
    down.pipe(up);
    up.pipe(down);
  }

  private socketClosed(which: net.Socket): void {
    this.openSockets--;
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
      bytes_received: down.bytesRead,
      bytes_sent: down.bytesWritten,
      duration_ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
      error: code ?? null,
    });
    this.opts.onClose(this);
  }
}

function close(socket: net.Socket, reset: boolean): void {
  if (socket.destroyed) return;
  if (reset) socket.resetAndDestroy();
  else socket.destroy();
}
