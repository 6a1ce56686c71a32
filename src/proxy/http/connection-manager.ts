/**
 * One downstream HTTP connection, whatever its protocol (Envoy's HTTP connection manager): it
 * runs the connection's server codec (HTTP/1.1 or HTTP/2), makes a ProxyStream for each request
 * the codec decodes, keeps the connection's idle timeout, and drains it (Connection: close or
 * GOAWAY) at a drain, a reload that removes its listener, or an upgrade.
 *
 *   socket ─▶ ServerCodec ─ newStream(encoder) ─▶ ProxyStream (route, upstream, relay) ─▶ encoder
 *                 │ stream count                      one per request, many at once on HTTP/2
 *                 ▼
 *   idle_timeout: no stream for that long → close (Envoy's idle_timeout; streams have their own)
 */
import type net from 'node:net';
import { Http1ServerCodec, type Http1ServerOptions } from '../../codecs/http1/server-codec.ts';
import { Http2ServerCodec } from '../../codecs/http2/server-codec.ts';
import type { Http2MigratedState } from '../../codecs/http2/connection.ts';
import type { ShuttleError } from '../../errors.ts';
import type { ServerCodec, ServerCodecCallbacks, StreamDecoder, StreamEncoder } from '../../layers.ts';
import { L } from '../../shared/stats-table.ts';
import { Deadline, deadlines, type DeadlineOwner, type DeadlineQueue } from '../../stream/deadlines.ts';
import type { TlsInfo } from '../../net/tls-server.ts';
import { isTlsSocket, whenFlushed, type Migratable, type MigratedState, type MigrationDone } from '../../upgrade/migration.ts';
import type { HttpListenerSnapshot, HttpProxyContext } from './context.ts';
import { ProxyStream, type DownstreamConnection } from './proxy-stream.ts';

export type HttpProtocol = 'HTTP/1.1' | 'HTTP/2';

export class HttpConnectionManager implements ServerCodecCallbacks, DownstreamConnection, Migratable, DeadlineOwner {
  readonly socket: net.Socket;
  readonly id: string;
  private readonly ctx: HttpProxyContext;
  /** The generation the connection opened under: its limits and connection counters. */
  private readonly snap: HttpListenerSnapshot;
  private readonly codec: ServerCodec;
  private readonly idleTimer: Deadline;
  private readonly idleQueue: DeadlineQueue;
  private ip: string | undefined;
  private readonly onClosed: (c: HttpConnectionManager) => void;
  /** Waiting for an idle moment to move to the new process (an upgrade). */
  private migration: MigrationDone | undefined;
  private cancelFlush: (() => void) | undefined;
  /** Reading is stopped for the migration (a cancel or rollback restarts it). */
  private paused = false;
  private h2Retry: NodeJS.Timeout | undefined;

  /** The connection's TLS (SNI, ALPN, the client's identity), when it has one. */
  readonly tls: TlsInfo | undefined;

  /** `resumed`: an HTTP/2 connection moved here from the process this one upgraded. */
  constructor(socket: net.Socket, id: string, protocol: HttpProtocol, ctx: HttpProxyContext, onClosed: (c: HttpConnectionManager) => void, tls?: TlsInfo, resumed?: Http2MigratedState) {
    this.socket = socket;
    this.id = id;
    this.tls = tls;
    this.ctx = ctx;
    this.onClosed = onClosed;
    const snap = (this.snap = ctx.snapshot());
    if (protocol === 'HTTP/2') {
      const http = snap.listener.http;
      const listenerBase = snap.telemetry.layout.listener(snap.listenerIndex);
      const stats = { row: snap.telemetry.row, rxCell: listenerBase + L.downstream_cx_rx_bytes_total, txCell: listenerBase + L.downstream_cx_tx_bytes_total };
      this.codec = new Http2ServerCodec(socket, this, { settings: http.http2, maxHeaderListSize: http.max_request_headers_kb * 1024, maxRequestBodyBytes: http.max_request_body_bytes, maxHeaders: http.max_headers, scheme: tls ? 'https' : 'http', stats, onError: (error) => this.onCodecError(error), counters: { row: snap.telemetry.row, base: listenerBase }, sendStallTimeoutMs: http.stream_idle_timeout, resumed });
    } else {
      this.codec = new Http1ServerCodec(socket, this, http1Options(snap, tls ? 'https' : 'http'));
    }
    this.idleQueue = deadlines.queue(snap.listener.idle_timeout);
    this.idleTimer = new Deadline(this); // (deadlineExpired: idle for the listener's idle_timeout)
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  /** The client's address (IPv4-mapped IPv6 shown as IPv4), read once when a request needs it. */
  get clientIp(): string {
    return (this.ip ??= (this.socket.remoteAddress ?? '').replace(/^::ffff:/, ''));
  }

  /** `initial`: bytes already read (protocol detection) that belong to the first request. */
  start(initial?: Buffer): void {
    this.snap.telemetry.downstreamOpened(this.snap.listenerIndex);
    this.idleTimer.arm(this.idleQueue);
    this.codec.start(initial);
  }

  /**
   * Drain: no new request is taken; what is under way finishes (HTTP/1: Connection: close;
   * HTTP/2: GOAWAY, then its streams finish). Each codec keeps an idle connection a moment for a
   * request already on its way.
   */
  drain(): void {
    this.codec.goAway();
  }

  /** Closes now (drain deadline). */
  abort(): void {
    this.codec.close();
  }

  /**
   * Connection migration: HTTP/1 moves between requests (at once if idle, else when the response
   * in flight is done); HTTP/2 once every request it has is complete and answered (reading stops
   * first: new streams wait for the new process). TLS cannot move: it drains.
   */
  startMigration(done: MigrationDone): () => void {
    if (this.tls || isTlsSocket(this.socket)) {
      done('tls');
      return noop;
    }
    this.migration = done;
    if (this.codec instanceof Http2ServerCodec) this.tryMigrateH2();
    else this.tryMigrate();
    return () => {
      this.migration = undefined;
      clearTimeout(this.h2Retry);
      this.cancelFlush?.();
      this.cancelFlush = undefined;
      // Paused already: this process goes on serving it.
      if (this.paused) this.serveHere();
    };
  }

  /** HTTP/2: reading stopped? then streams done? then flushed: ready. Polled (a stream's request end is no event here). */
  private tryMigrateH2(): void {
    const codec = this.codec as Http2ServerCodec;
    this.h2Retry = undefined;
    if (this.migration === undefined || this.cancelFlush !== undefined) return;
    if (!this.paused && codec.pauseForMigration()) this.paused = true;
    const state = this.paused ? codec.migrationState() : undefined;
    if (state === undefined) {
      this.h2Retry = setTimeout(() => this.tryMigrateH2(), H2_MIGRATION_POLL_MS);
      return;
    }
    this.handOver({ kind: 'http2', listener: this.snap.listener.name, h2: state });
  }

  /** HTTP/1: at an idle moment (the codec says), stopped and handed over. */
  private tryMigrate(): void {
    const codec = this.codec as Http1ServerCodec;
    if (this.migration === undefined || this.cancelFlush !== undefined || !codec.pauseForMigration()) return;
    this.paused = true;
    this.handOver({ kind: 'http1', listener: this.snap.listener.name });
  }

  /** Reading is stopped at a safe point: once the output is flushed, the connection is ready to move. */
  private handOver(state: MigratedState): void {
    this.idleTimer.cancel();
    const codec = this.codec as Http1ServerCodec | Http2ServerCodec;
    this.cancelFlush = whenFlushed([this.socket], () => codec.output.pending, (ok) => {
      this.cancelFlush = undefined;
      const done = this.migration;
      this.migration = undefined;
      if (!done) return;
      if (!ok) return done('closed');
      done({ sockets: [this.socket], state, commit: () => this.socket.destroy(), rollback: () => this.serveHere() });
    });
  }

  /** The migration is cancelled or rolled back: read again and serve here. */
  private serveHere(): void {
    this.paused = false;
    this.idleTimer.arm(this.idleQueue);
    (this.codec as Http1ServerCodec | Http2ServerCodec).resumeAfterMigration();
  }

  // ---- ServerCodecCallbacks ------------------------------------------------------------------

  newStream(encoder: StreamEncoder): StreamDecoder {
    return new ProxyStream(encoder, this, this.ctx);
  }

  onStreamCountChanged(active: number): void {
    if (active > 0) this.idleTimer.cancel();
    else {
      this.idleTimer.arm(this.idleQueue);
      // Moving to the new process: once this event is over (the codec resumes reading in it).
      if (this.migration !== undefined && this.codec instanceof Http1ServerCodec) return void setImmediate(() => this.tryMigrate());
      // Draining and idle: nothing more will come.
      if (this.ctx.draining()) this.drain();
    }
  }

  /** The idle timer: no stream for the listener's idle_timeout. */
  deadlineExpired(): void {
    this.codec.close();
  }

  onClose(): void {
    this.idleTimer.cancel();
    clearTimeout(this.h2Retry);
    this.cancelFlush?.();
    this.snap.telemetry.downstreamClosed(this.snap.listenerIndex);
    this.onClosed(this);
  }

  onCodecError(error: ShuttleError): void {
    const snap = this.snap;
    if (error.source === 'internal') {
      this.ctx.logger.error({ conn: this.id, listener: snap.listener.name, err: error }, 'internal error handling a request; connection closed');
      return;
    }
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_cx_protocol_error]++;
    this.ctx.logger.info({ conn: this.id, listener: snap.listener.name, status: error.httpStatus, error: error.code, reason: error.message }, 'bad request');
  }
}

function noop(): void {}

/**
 * The HTTP/1 codec's options for a listener generation and scheme: the same object for all its
 * connections (an idle connection should cost little more than its socket).
 */
const http1OptionsBySnapshot = new WeakMap<HttpListenerSnapshot, { http?: Http1ServerOptions; https?: Http1ServerOptions }>();

function http1Options(snap: HttpListenerSnapshot, scheme: 'http' | 'https'): Http1ServerOptions {
  let bySchema = http1OptionsBySnapshot.get(snap);
  if (bySchema === undefined) http1OptionsBySnapshot.set(snap, (bySchema = {}));
  const known = bySchema[scheme];
  if (known !== undefined) return known;
  const http = snap.listener.http;
  const listenerBase = snap.telemetry.layout.listener(snap.listenerIndex);
  return (bySchema[scheme] = {
    limits: { maxHeadBytes: http.max_request_headers_kb * 1024, maxHeaders: http.max_headers },
    maxBodyBytes: http.max_request_body_bytes,
    headersTimeout: deadlines.queue(http.request_headers_timeout),
    scheme,
    tunnelIdleTimeoutMs: snap.listener.idle_timeout,
    stats: { row: snap.telemetry.row, rxCell: listenerBase + L.downstream_cx_rx_bytes_total, txCell: listenerBase + L.downstream_cx_tx_bytes_total },
  });
}

/** How often an HTTP/2 connection waiting to move checks whether its streams are done. */
const H2_MIGRATION_POLL_MS = 2;
