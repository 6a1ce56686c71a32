/**
 * HTTP/2 upstream pool for one host (per worker and settings): few connections, many streams on
 * each. A stream goes on the first connection with room (the smaller of the host's
 * SETTINGS_MAX_CONCURRENT_STREAMS and ours); when none has room, another connection is opened, up
 * to `max_connections`; past that, streams wait in a bounded queue.
 *
 *   newStream ─▶ connection with room? ─yes─▶ open stream (odd id) ─▶ onPoolReady(encoder)
 *                   │ no
 *                   ├─ under max_connections ─▶ connect (Connector) ─▶ preface + SETTINGS ─▶ serve waiters
 *                   └─ else wait (bounded, timed) ─▶ a stream closes ─▶ serve waiters
 *
 * A GOAWAY from the host resets the streams past its last stream id as `refused` (never
 * processed: the proxy sends them again, on another connection) and retires the connection once
 * its other streams finish. Stream ids running out does the same.
 */
import type { Host } from '../cluster/host.ts';
import { Http2Connection, type Http2Stream } from '../codecs/http2/connection.ts';
import type { Http2ClientOptionsConfig } from '../config/route-schema.ts';
import { ShuttleError } from '../errors.ts';
import type { CancelPoolRequest, Pool, PoolCallbacks, StreamDecoder } from '../layers.ts';
import { H } from '../shared/stats-table.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';
import { connectUpstream } from './connector.ts';
import type { UpstreamTls } from '../net/tls-client.ts';
import { Deadline, deadlines } from './deadlines.ts';
import type net from 'node:net';

/** Stream ids are 31 bits: a connection is retired a little before they run out. */
const LAST_STREAM_ID = 0x7fffff00;
/** Streams waiting for room, per pool. */
const MAX_WAITING = 1024;
const NO_CANCEL: CancelPoolRequest = () => {};

interface Waiter {
  decoder: StreamDecoder;
  callbacks: PoolCallbacks;
  timer: Deadline | undefined;
}

class Http2ClientConnection extends Http2Connection {
  private readonly pool: Http2Pool;
  private readonly maxStreams: number;
  /** Streams opened on it so far. */
  served = 0;

  constructor(socket: net.Socket, pool: Http2Pool, cfg: Http2ClientOptionsConfig) {
    const base = pool.telemetry.layout.host(pool.host.index);
    super(socket, {
      role: 'client',
      local: {
        maxConcurrentStreams: 100, // (pushes are refused; this bounds nothing we accept)
        initialStreamWindow: cfg.initial_stream_window_size,
        connectionWindow: cfg.initial_connection_window_size,
        maxFrameSize: 16_384,
        headerTableSize: 4096,
        maxHeaderListSize: 256 * 1024,
      },
      stats: { row: pool.telemetry.row, rxCell: base + H.upstream_cx_rx_bytes_total, txCell: base + H.upstream_cx_tx_bytes_total },
      onError: () => {},
    });
    this.pool = pool;
    this.maxStreams = cfg.max_concurrent_streams;
  }

  /** Streams this connection can take now. */
  get room(): number {
    if (this.dead || this.goAwaySent || this.goAwayReceived >= 0 || this.nextStreamId > LAST_STREAM_ID) return 0;
    return Math.min(this.maxStreams, this.peerMaxConcurrentStreams) - this.streams.size;
  }

  openStream(decoder: StreamDecoder): Http2Stream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    this.served++;
    const st = this.newStream(id);
    st.decoder = decoder;
    return st;
  }

  protected onRequest(): void {
    // (A server cannot open streams: PUSH_PROMISE is refused at the frame level.)
  }

  protected onStreamClosed(): void {
    this.pool.roomFreed(this);
  }

  protected onConnectionClosed(): void {
    this.pool.connectionClosed(this);
  }

  protected onPeerSettings(): void {
    this.pool.roomFreed(this);
  }

  protected onGoAway(lastStreamId: number): void {
    // Streams past the last one the host processed were never seen: they go elsewhere.
    for (const st of this.streams.values()) if (st.id > lastStreamId) st.refusedByGoAway();
    if (this.streams.size === 0) this.shutdown();
  }
}

export class Http2Pool implements Pool {
  readonly host: Host;
  readonly telemetry: WorkerTelemetry;
  private readonly config: Http2ClientOptionsConfig;
  private readonly connectTimeout: number;
  private readonly connections: Http2ClientConnection[] = [];
  private connecting = 0;
  private readonly waiters: Waiter[] = [];
  private draining = false;

  private readonly tls: UpstreamTls | undefined;
  /** What every stream of this pool is told when ready (the same for all: no object per stream). */
  private readonly readyInfo;

  constructor(host: Host, config: Http2ClientOptionsConfig, connectTimeout: number, telemetry: WorkerTelemetry, tls?: UpstreamTls) {
    this.host = host;
    this.config = config;
    this.connectTimeout = connectTimeout;
    this.telemetry = telemetry;
    this.readyInfo = Object.freeze({ host, reused: false, protocol: 'HTTP/2' as const });
    // HTTP/2 over TLS says so by ALPN.
    this.tls = tls && !tls.options.ALPNProtocols ? { ...tls, options: { ...tls.options, ALPNProtocols: ['h2'] } } : tls;
  }

  newStream(decoder: StreamDecoder, callbacks: PoolCallbacks, waitTimeoutMs: number): CancelPoolRequest {
    const conn = this.withRoom();
    if (conn !== undefined) {
      this.open(conn, decoder, callbacks);
      return NO_CANCEL;
    }
    if (this.waiters.length >= MAX_WAITING) {
      callbacks.onPoolFailure(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `HTTP/2 pool for ${this.host.address} is full (${this.waiters.length} streams waiting)`));
      return NO_CANCEL;
    }
    const waiter: Waiter = { decoder, callbacks, timer: undefined };
    this.waiters.push(waiter);
    if (this.connections.length + this.connecting < this.config.max_connections && this.connecting * this.config.max_concurrent_streams < this.waiters.length) this.connect();
    if (waitTimeoutMs > 0) {
      waiter.timer = new Deadline(() => {
        this.remove(waiter);
        callbacks.onPoolFailure(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `no HTTP/2 stream to ${this.host.address} became free in ${waitTimeoutMs}ms`));
      });
      waiter.timer.arm(deadlines.queue(waitTimeoutMs));
    }
    return () => this.remove(waiter);
  }

  /**
   * Connections close as they become idle, and none is kept for later; streams still asked for
   * (requests of draining downstream connections) are served meanwhile.
   */
  drain(): void {
    this.draining = true;
    for (const c of [...this.connections]) if (c.activeStreams === 0) c.retire();
  }

  private remove(waiter: Waiter): void {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    waiter.timer?.cancel();
  }

  private withRoom(): Http2ClientConnection | undefined {
    for (const c of this.connections) if (c.room > 0) return c;
    return undefined;
  }

  private open(conn: Http2ClientConnection, decoder: StreamDecoder, callbacks: PoolCallbacks): void {
    const st = conn.openStream(decoder);
    callbacks.onPoolReady(st, this.readyInfo);
  }

  /** A connection has room again (a stream closed, the host's SETTINGS came): serve waiters. */
  roomFreed(conn: Http2ClientConnection): void {
    while (this.waiters.length > 0 && conn.room > 0) {
      const w = this.waiters.shift()!;
      w.timer?.cancel();
      this.open(conn, w.decoder, w.callbacks);
    }
    if (this.draining && conn.activeStreams === 0) conn.retire();
  }

  connectionClosed(conn: Http2ClientConnection): void {
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    if (this.waiters.length > 0 && this.connections.length + this.connecting < this.config.max_connections) this.connect();
  }

  private connect(): void {
    this.connecting++;
    const socket = connectUpstream(this.host, this.telemetry, { timeoutMs: this.connectTimeout, tls: this.tls }, (error) => {
      this.connecting--;
      if (error) {
        // Nothing was sent: every waiter hears it (the proxy may try another host).
        const waiters = this.connections.length === 0 && this.connecting === 0 ? this.waiters.splice(0) : [];
        for (const w of waiters) {
          w.timer?.cancel();
          w.callbacks.onPoolFailure(error);
        }
        return;
      }
      const conn = new Http2ClientConnection(socket, this, this.config);
      this.connections.push(conn);
      conn.start();
      this.roomFreed(conn);
    });
  }
}
