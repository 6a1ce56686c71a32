/**
 * HTTP/1.1 upstream pool for one host (per worker and pool settings), and its client codec: one
 * stream at a time per connection, keep-alive reuse (most recently used first), a cap on
 * connections, a bounded queue of waiting streams, an idle timeout, a cap on requests per
 * connection. A connection is reused only when the request was written and the response read to
 * their ends; anything else closes it.
 *
 *   newStream ─▶ idle connection? ─yes─▶ onPoolReady(encoder)
 *                   │ no
 *                   ├─ under max_connections ─▶ connect (Connector) ─▶ onPoolReady
 *                   └─ else queue (≤ max_pending) ─▶ next release ─▶ onPoolReady
 *
 * All upstream sockets of a thread read into one shared buffer (Node's `onread`): reads are
 * handled one at a time, so a read needs no Buffer of its own; decoded data handed up is a view
 * that the next read overwrites, which the StreamDecoder contract says (copy what you keep).
 */
import type net from 'node:net';
import type { z } from 'zod';
import type { Host } from '../cluster/host.ts';
import { ResponseDecoder } from '../codecs/http1/decoder.ts';
import type { ResponseHead } from '../codecs/http1/head.ts';
import { HttpParseError } from '../codecs/http1/errors.ts';
import { fieldLines, STAGED_BODY_BYTES, writeRequestHead } from '../codecs/http1/head-writer.ts';
import type { connectionPool } from '../config/route-schema.ts';
import { ShuttleError } from '../errors.ts';
import type { CancelPoolRequest, ConnectionLimit, Pool, PoolCallbacks, StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks } from '../layers.ts';
import { H } from '../shared/stats-table.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';
import { connectUpstream } from './connector.ts';
import type { UpstreamTls } from '../net/tls-client.ts';
import { Deadline, deadlines } from './deadlines.ts';
import { HeaderMap } from './header-map.ts';
import { beginBatch, endBatch, onBatchedData, SocketOutput, type OutputOwner } from './socket-output.ts';

export type PoolConfig = z.output<typeof connectionPool>;

const UPSTREAM_READ_BYTES = 64 * 1024;
const upstreamReadBuffer = Buffer.allocUnsafeSlow(UPSTREAM_READ_BYTES);
const EMPTY = Buffer.alloc(0);
const NO_CANCEL: CancelPoolRequest = () => {};

interface Waiter {
  decoder: StreamDecoder;
  callbacks: PoolCallbacks;
  timer: Deadline | undefined;
}

/** One upstream HTTP/1.1 connection and the stream it serves now. */
class Http1ClientConnection implements OutputOwner {
  readonly socket: net.Socket;
  readonly host: Host;
  readonly output: SocketOutput;
  requests = 0;
  stream: Http1ClientStream | undefined;
  /** The cluster's connection breaker this connection counts against (released when it closes). */
  heldLimit: ConnectionLimit | undefined;
  private readonly pool: Http1Pool;
  private readonly decoder: ResponseDecoder;
  private readonly idleTimer: Deadline;
  private readPauses = 0;
  closeError: Error | undefined;

  constructor(socket: net.Socket, host: Host, pool: Http1Pool) {
    this.socket = socket;
    this.host = host;
    this.pool = pool;
    this.output = new SocketOutput(socket, this);
    this.idleTimer = new Deadline(() => socket.destroy());
    this.decoder = new ResponseDecoder({
      onHead: (h) => this.stream?.onResponseHead(h),
      onBody: (b, last) => this.stream?.onResponseBody(b, last),
      onComplete: (t) => this.stream?.onResponseComplete(t),
    }, { volatileInput: true, payloadOnly: true });
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => (this.closeError = err));
    socket.once('close', () => this.onClose());
  }

  onWritten(bytes: number): void {
    this.pool.telemetry.row[this.pool.telemetry.layout.host(this.host.index) + H.upstream_cx_tx_bytes_total] += bytes;
  }

  onFull(): void {
    const stream = this.stream;
    if (stream === undefined) return;
    stream.writeCallbacks?.onAboveWriteHighWatermark();
    this.socket.once('drain', () => stream.writeCallbacks?.onBelowWriteLowWatermark());
  }

  /** Bytes read into the shared buffer. */
  onRead(bytes: number): void {
    this.onChunk(upstreamReadBuffer.subarray(0, bytes));
  }

  /** Bytes read (a view of the shared buffer, or a TLS socket's own chunk). */
  onChunk(chunk: Buffer): void {
    this.pool.telemetry.row[this.pool.telemetry.layout.host(this.host.index) + H.upstream_cx_rx_bytes_total] += chunk.length;
    const stream = this.stream;
    // Bytes on an idle connection: the upstream broke the protocol.
    if (stream === undefined) return void this.socket.destroy();
    if (stream.tunneling) return stream.tunnelData(chunk, false);
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      if (!(err instanceof HttpParseError) || this.stream !== stream) throw err;
      stream.fail(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', err.message), 'protocol-error');
    }
  }

  /** A new stream takes the connection. */
  take(stream: Http1ClientStream): void {
    this.idleTimer.cancel();
    this.stream = stream;
    this.requests++;
  }

  expectResponseTo(method: string): void {
    this.decoder.expectResponseTo(method);
  }

  /** After a 1xx: the final response follows on the same decoder. */
  resumeDecoder(): void {
    queueMicrotask(() => {
      try {
        this.decoder.resume();
      } catch (err) {
        const stream = this.stream;
        if (!(err instanceof HttpParseError) || stream === undefined) throw err;
        stream.fail(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', err.message), 'protocol-error');
      }
    });
  }

  /** Bytes that followed a 101 in the same read: the tunnel's first. */
  detachDecoder(): Buffer | undefined {
    return this.decoder.detach();
  }

  get decoderIdle(): boolean {
    return this.decoder.buffered === 0;
  }

  readDisable(disable: boolean): void {
    if (disable) {
      if (this.readPauses++ === 0) this.socket.pause();
    } else if (this.readPauses > 0 && --this.readPauses === 0) {
      this.socket.resume();
    }
  }

  /** The stream is done with the connection: back to the pool if both messages ended cleanly. */
  release(reusable: boolean): void {
    this.stream = undefined;
    if (this.readPauses > 0) {
      this.readPauses = 0;
      this.socket.resume();
    }
    this.pool.release(this, reusable && this.decoderIdle && this.socket.readable);
  }

  idle(timeoutMs: number): void {
    this.decoder.resume();
    if (timeoutMs > 0) this.idleTimer.arm(deadlines.queue(timeoutMs));
  }

  private onEnd(): void {
    const stream = this.stream;
    if (stream === undefined) return void this.socket.destroy();
    if (stream.tunneling) return stream.tunnelData(EMPTY, true);
    // A close-delimited body ends here; anything else cut short is a reset.
    this.decoder.end();
    if (this.stream === stream && !stream.responseComplete) {
      stream.fail(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', 'upstream closed the connection before the response ended'), 'remote');
    }
  }

  private onClose(): void {
    this.idleTimer.cancel();
    this.pool.removed(this);
    const stream = this.stream;
    this.stream = undefined;
    if (stream === undefined) return;
    if (stream.tunneling) return stream.tunnelClosed();
    if (!stream.responseComplete) {
      const err = this.closeError;
      stream.fail(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', err ? err.message : 'upstream connection closed', { cause: err }), 'connection-termination');
    }
  }
}

/** Request framing chosen when the head is written. */
const Framing = { Length: 0, Chunked: 1 } as const;

/** One request on an upstream HTTP/1.1 connection: encodes it, decodes its response. */
class Http1ClientStream implements StreamEncoder {
  readonly protocol = 'HTTP/1.1';
  writeCallbacks: StreamWriteCallbacks | undefined;
  bytesSent = 0;
  tunneling = false;
  responseComplete = false;
  private readonly conn: Http1ClientConnection;
  private readonly decoder: StreamDecoder;
  private framing: number = Framing.Length;
  private requestComplete = false;
  private upgradeRequested = false;
  /** The head just decoded was a 1xx: its completion is not the response's. */
  private interim = false;
  private responseEnded = false;
  /** Done with the connection (released, or reset). */
  private detached = false;
  private delimitedByClose = false;
  private keepAlive = true;
  private headRequest = false;

  constructor(conn: Http1ClientConnection, decoder: StreamDecoder) {
    this.conn = conn;
    this.decoder = decoder;
  }

  // ---- StreamEncoder (the request) ----------------------------------------------------------

  encodeInformational(): void {}

  encodeHeaders(h: HeaderMap, endStream: boolean): void {
    this.conn.expectResponseTo(h.method);
    this.headRequest = h.method === 'HEAD';
    // The framing and upgrade lines, after the fields (the head is written in place: head-writer.ts).
    let out = '';
    if (h.upgrade) {
      this.upgradeRequested = true;
      out += `Connection: upgrade\r\nUpgrade: ${h.upgrade}\r\n`;
    }
    if (h.contentLength >= 0) out += `Content-Length: ${h.contentLength}\r\n`;
    else if (!endStream) {
      this.framing = Framing.Chunked;
      out += 'Transfer-Encoding: chunked\r\n';
    }
    this.bytesSent += writeRequestHead(this.conn.output, h.method, h.path, h.authority, h.fields, out + '\r\n');
    if (endStream) this.requestDone();
  }

  encodeData(data: Buffer, endStream: boolean, volatile = false): void {
    if (this.detached && !this.tunneling) return;
    if (this.tunneling) {
      if (data.length > 0) this.push(data, volatile);
      if (endStream) {
        this.conn.output.flush();
        this.conn.socket.end();
      }
      return;
    }
    if (this.framing === Framing.Chunked) {
      if (data.length > 0) {
        this.push(`${data.length.toString(16)}\r\n`);
        this.push(data, volatile);
        this.push(endStream ? '\r\n0\r\n\r\n' : '\r\n');
      } else if (endStream) {
        this.push('0\r\n\r\n');
      }
    } else if (data.length > 0 && data.length <= STAGED_BODY_BYTES) {
      this.bytesSent += data.length;
      this.conn.output.pushCopy(data, 0, data.length);
    } else if (data.length > 0) {
      this.push(data, volatile);
    }
    if (endStream) this.requestDone();
  }

  encodeTrailers(trailers: HeaderMap): void {
    if (this.detached) return;
    if (this.framing === Framing.Chunked) this.push(`0\r\n${fieldLines(trailers.fields)}\r\n`);
    this.requestDone();
  }

  reset(_reason: StreamResetReason): void {
    if (this.detached && !this.tunneling) return;
    this.detached = true;
    this.conn.stream = undefined;
    this.conn.socket.destroy();
  }

  readDisable(disable: boolean): void {
    if (!this.detached || this.tunneling) this.conn.readDisable(disable);
  }

  setWriteCallbacks(callbacks: StreamWriteCallbacks): void {
    this.writeCallbacks = callbacks;
  }

  private push(piece: string | Buffer, volatile = false): void {
    this.bytesSent += piece.length;
    this.conn.output.push(piece, volatile);
  }

  private requestDone(): void {
    this.requestComplete = true;
    if (this.responseComplete) this.detach();
  }

  // ---- the response (from the connection's decoder) -----------------------------------------

  onResponseHead(h: ResponseHead): void {
    const status = h.status;
    if (status >= 100 && status < 200 && status !== 101) {
      this.interim = true;
      this.decoder.decodeInformational(HeaderMap.response(status, h.headers));
      return;
    }
    const headers = HeaderMap.response(status, h.headers);
    headers.contentLength = h.contentLength;
    this.keepAlive = h.keepAlive;
    if (status === 101) {
      if (!this.upgradeRequested) {
        this.fail(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', 'upstream switched protocols without an Upgrade request'), 'protocol-error');
        return;
      }
      headers.upgrade = h.upgrade ?? '';
      this.tunneling = true;
      this.detached = true;
      this.decoder.decodeHeaders(headers, false);
      // What followed the head in this read is the tunnel's first bytes.
      queueMicrotask(() => {
        const rest = this.conn.detachDecoder();
        if (rest !== undefined && rest.length > 0) this.tunnelData(rest, false);
      });
      return;
    }
    // Without a length the body ends with the connection: it cannot be reused.
    this.delimitedByClose = !h.chunked && h.contentLength < 0 && !noBodyStatus(status);
    const noBody = this.conn.socket.destroyed || noBodyStatus(status) || h.contentLength === 0 || this.headRequest;
    if (noBody) this.responseEnded = true;
    this.decoder.decodeHeaders(headers, noBody);
  }

  onResponseBody(chunk: Buffer, last: boolean): void {
    if (this.responseEnded) return;
    if (last) this.responseEnded = true;
    this.decoder.decodeData(chunk, last);
  }

  onResponseComplete(trailers: string[]): void {
    if (this.tunneling) return; // a 101 has no body: what follows is the tunnel's
    if (this.interim) {
      this.interim = false;
      this.conn.resumeDecoder();
      return;
    }
    this.responseComplete = true;
    if (!this.responseEnded) {
      this.responseEnded = true;
      if (trailers.length > 0) this.decoder.decodeTrailers(new HeaderMap(trailers));
      else this.decoder.decodeData(EMPTY, true);
    }
    // An upstream that answered before the request ended (an early 413): the rest of the request
    // can't be framed any more, so the connection is not reused.
    if (this.requestComplete) this.detach();
    else this.reset('local');
  }

  /** Tunnel bytes from the upstream after a 101 (`end`: it closed its side). */
  tunnelData(chunk: Buffer, end: boolean): void {
    this.decoder.decodeData(chunk, end);
  }

  tunnelClosed(): void {
    this.decoder.onReset('connection-termination');
  }

  /** The response can't complete: the decoder hears a reset, the connection is not reused. */
  fail(error: ShuttleError, reason: StreamResetReason): void {
    if (this.responseComplete) return;
    this.responseComplete = true;
    const decoder = this.decoder;
    this.reset('local');
    decoder.onReset(reason, error);
  }

  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.conn.release(this.keepAlive && !this.delimitedByClose);
  }
}

function noBodyStatus(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

export class Http1Pool implements Pool {
  readonly host: Host;
  readonly telemetry: WorkerTelemetry;
  private readonly config: PoolConfig;
  private readonly connectTimeout: number;
  private readonly idleConnections: Http1ClientConnection[] = [];
  private readonly waiters: Waiter[] = [];
  private total = 0;
  private draining = false;

  private readonly tls: UpstreamTls | undefined;
  /** The cluster's max_connections breaker (set by the pool registry for each request's generation). */
  limit: ConnectionLimit | undefined;

  constructor(host: Host, config: PoolConfig, connectTimeout: number, telemetry: WorkerTelemetry, tls?: UpstreamTls) {
    this.host = host;
    this.config = config;
    this.connectTimeout = connectTimeout;
    this.telemetry = telemetry;
    this.tls = tls;
  }

  newStream(decoder: StreamDecoder, callbacks: PoolCallbacks, waitTimeoutMs: number): CancelPoolRequest {
    let conn: Http1ClientConnection | undefined;
    while ((conn = this.idleConnections.pop())) {
      if (!conn.socket.destroyed && conn.socket.readable) {
        this.attach(conn, decoder, callbacks);
        return NO_CANCEL;
      }
    }
    if (this.total < this.config.max_connections_per_host) {
      const held = this.openAllowed();
      if (held !== false) {
        this.connect({ decoder, callbacks, timer: undefined }, held);
        return NO_CANCEL;
      }
    }
    if (this.waiters.length >= this.config.max_pending_requests) {
      callbacks.onPoolFailure(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `connection pool for ${this.host.address} is full (${this.total} connections, ${this.waiters.length} waiting)`));
      return NO_CANCEL;
    }
    const waiter: Waiter = { decoder, callbacks, timer: undefined };
    if (waitTimeoutMs > 0) {
      waiter.timer = new Deadline(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        callbacks.onPoolFailure(new ShuttleError('SHUTTLE_E_UPSTREAM_OVERFLOW', 'internal', `no connection to ${this.host.address} became free in ${waitTimeoutMs}ms`));
      });
      waiter.timer.arm(deadlines.queue(waitTimeoutMs));
    }
    this.waiters.push(waiter);
    return () => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) {
        this.waiters.splice(i, 1);
        waiter.timer?.cancel();
      }
    };
  }

  private attach(conn: Http1ClientConnection, decoder: StreamDecoder, callbacks: PoolCallbacks): void {
    const stream = new Http1ClientStream(conn, decoder);
    conn.take(stream);
    callbacks.onPoolReady(stream, { host: this.host, reused: conn.requests > 1, protocol: 'HTTP/1.1' });
  }

  /** A connection's stream is done: reuse it if both messages ended cleanly. */
  release(conn: Http1ClientConnection, reusable: boolean): void {
    const max = this.config.max_requests_per_connection;
    if (!reusable || this.draining || conn.socket.destroyed || (max > 0 && conn.requests >= max)) {
      conn.socket.destroy();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.timer?.cancel();
      conn.idle(0);
      this.attach(conn, waiter.decoder, waiter.callbacks);
      return;
    }
    conn.idle(this.config.idle_timeout);
    this.idleConnections.push(conn);
  }

  /** Called by a connection when its socket closed. */
  removed(conn: Http1ClientConnection): void {
    this.total--;
    conn.heldLimit?.release();
    conn.heldLimit = undefined;
    const i = this.idleConnections.indexOf(conn);
    if (i >= 0) this.idleConnections.splice(i, 1);
    this.serveWaiter();
  }

  drain(): void {
    this.draining = true;
    for (const c of this.idleConnections.splice(0)) c.socket.destroy();
  }

  private serveWaiter(): void {
    if (this.waiters.length > 0 && this.total < this.config.max_connections_per_host) {
      const held = this.openAllowed();
      if (held === false) return;
      const waiter = this.waiters.shift()!;
      waiter.timer?.cancel();
      this.connect(waiter, held);
    }
  }

  /**
   * Whether the cluster's max_connections breaker lets one more connection open: false (a waiting
   * stream then waits for one of ours to free up), or the limit it now counts against.
   */
  private openAllowed(): ConnectionLimit | undefined | false {
    const limit = this.limit;
    if (limit === undefined) return undefined;
    const got = limit.acquire();
    if (got === 'refused') {
      limit.overflowed();
      return false;
    }
    return got === 'counted' ? limit : undefined;
  }

  private connect(waiter: Waiter, held: ConnectionLimit | undefined): void {
    this.total++;
    let conn: Http1ClientConnection | undefined;
    const socket = connectUpstream(this.host, this.telemetry, {
      timeoutMs: this.connectTimeout,
      tls: this.tls,
      // (A TLS socket reads through its own buffers: no shared buffer there.)
      onread: this.tls !== undefined ? undefined : {
        buffer: upstreamReadBuffer,
        callback: (bytes: number): boolean => {
          if (!conn) {
            socket.destroy();
            return true;
          }
          beginBatch();
          try {
            conn.onRead(bytes);
          } finally {
            endBatch();
          }
          return true;
        },
      },
    }, (error) => {
      if (error) {
        this.total--;
        held?.release();
        waiter.callbacks.onPoolFailure(error);
        this.serveWaiter();
        return;
      }
      // (Drained while connecting: this one stream is served, then the connection closes.)
      conn = new Http1ClientConnection(socket, this.host, this);
      conn.heldLimit = held;
      if (this.tls !== undefined) {
        const c = conn;
        onBatchedData(socket, (chunk) => c.onChunk(chunk));
      }
      this.attach(conn, waiter.decoder, waiter.callbacks);
    });
  }
}
