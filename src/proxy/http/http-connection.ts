/**
 * One downstream HTTP/1.1 connection (Envoy's connection manager): decodes requests, runs them one
 * at a time as HttpStreams (pipelined requests wait in the decoder, so responses leave in order),
 * answers malformed input with the right status and closes, and keeps the connection alive
 * between requests until the idle timeout.
 */
import type net from 'node:net';
import { RequestDecoder } from '../../codecs/http1/decoder.ts';
import { HttpParseError } from '../../codecs/http1/errors.ts';
import { ShuttleError } from '../../errors.ts';
import type { RequestHead } from '../../codecs/http1/head.ts';
import { L } from '../../shared/stats-table.ts';
import { Deadline, deadlines, type DeadlineQueue } from '../../stream/deadlines.ts';
import type { HttpListenerSnapshot, HttpProxyContext } from './context.ts';
import { HttpStream, type StreamOwner } from './http-stream.ts';
import { localReply } from './messages.ts';

/** How long an idle keep-alive connection is kept during a drain, for a request already on its way. */
const DRAIN_IDLE_GRACE_MS = 1_000;

/** Pipelined bytes buffered beyond this pause reading until the current request is done. */
const MAX_PIPELINED_BYTES = 1024 * 1024;

export class HttpConnection implements StreamOwner {
  readonly socket: net.Socket;
  readonly id: string;
  readonly clientIp: string;
  private readonly ctx: HttpProxyContext;
  /** The generation the connection opened under: its limits and connection counters. */
  private readonly snap: HttpListenerSnapshot;
  private readonly decoder: RequestDecoder;
  private current: HttpStream | undefined;
  private tunnel: HttpStream | undefined;
  /**
   * Between requests: idle_timeout with no request → close (Envoy's idle_timeout). During a
   * request: stream_idle_timeout with no byte of it moving → the stream ends (Envoy's
   * stream_idle_timeout). One entry per connection, re-armed on activity, nothing per request.
   */
  private readonly idleTimer = new Deadline(() => (this.current ? this.current.onStreamIdle() : this.socket.destroy()));
  private readonly idleQueue: DeadlineQueue;
  /** Undefined when stream_idle_timeout is 0 (off). */
  private readonly streamIdleQueue: DeadlineQueue | undefined;
  private readonly headQueue: DeadlineQueue;
  /** Waiting for the next request head (request_headers_timeout → 408). */
  private readonly headTimer = new Deadline(() => this.reject(new HttpParseError('SHUTTLE_E_HTTP_HEADERS_TIMEOUT', 'request header timeout')));
  private closing = false;
  private readingPaused = false;
  private drainTimer: NodeJS.Timeout | undefined;
  /** The current request's bytes are still arriving (its response may already be done). */
  private requestInProgress = false;
  private resumeAfterRequest = false;
  private readonly onClose: (c: HttpConnection) => void;

  constructor(socket: net.Socket, id: string, ctx: HttpProxyContext, onClose: (c: HttpConnection) => void) {
    this.socket = socket;
    this.id = id;
    this.ctx = ctx;
    this.onClose = onClose;
    this.clientIp = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.snap = ctx.snapshot();
    const http = this.snap.listener.http;
    this.idleQueue = deadlines.queue(this.snap.listener.idle_timeout);
    this.streamIdleQueue = http.stream_idle_timeout > 0 ? deadlines.queue(http.stream_idle_timeout) : undefined;
    this.headQueue = deadlines.queue(http.request_headers_timeout);
    this.decoder = new RequestDecoder({
      onHead: (head) => this.onHead(head),
      onBody: (chunk) => this.current?.onRequestBody(chunk),
      onComplete: () => this.onRequestComplete(),
    }, { limits: { maxHeadBytes: http.max_request_headers_kb * 1024, maxHeaders: http.max_headers }, maxBodyBytes: http.max_request_body_bytes });
  }

  /** `initial`: bytes already read (protocol detection) that belong to the first request. */
  start(initial?: Buffer): void {
    const s = this.socket;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => {
      if (this.tunnel) this.tunnel.tunnelEnd();
      else if (!this.current) s.end();
      // A half-closed client with a request in flight still gets its response.
    });
    s.on('error', () => {});
    s.once('close', () => {
      this.headTimer.cancel();
      this.idleTimer.cancel();
      clearTimeout(this.drainTimer);
      this.current?.abort();
      this.tunnel?.abort();
      this.snap.telemetry.downstreamClosed(this.snap.listenerIndex);
      this.onClose(this);
    });
    this.idleTimer.arm(this.idleQueue);
    this.snap.telemetry.downstreamOpened(this.snap.listenerIndex);
    if (initial) this.onData(initial);
    s.resume();
  }

  /**
   * Drain: a busy connection closes after its current response (which says Connection: close). An
   * idle one closes after a short grace: a client about to send its next request gets it answered
   * (with Connection: close) instead of racing our FIN, the race that fails keep-alive requests.
   */
  drain(): void {
    if (this.current || this.tunnel || this.drainTimer) return;
    this.drainTimer = setTimeout(() => {
      if (!this.current && !this.tunnel) this.socket.end();
    }, DRAIN_IDLE_GRACE_MS);
    this.drainTimer.unref();
  }

  /** Closes now (drain deadline). */
  abort(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.snap.telemetry.row[this.snap.telemetry.layout.listener(this.snap.listenerIndex) + L.downstream_cx_rx_bytes_total] += chunk.length;
    if (this.tunnel) return this.tunnel.tunnelData(chunk);
    if (this.closing) return;
    if (!this.current && !this.headTimer.armed) {
      // The next request has begun: from here its head has request_headers_timeout to arrive.
      this.idleTimer.cancel();
      this.headTimer.arm(this.headQueue);
    }
    if (!this.decodeSafely(chunk)) return;
    if (this.decoder.paused && this.decoder.buffered > MAX_PIPELINED_BYTES) this.pauseReading();
  }

  /**
   * Runs the decoder (and through it routing and the stream's start) on new bytes, or on the
   * bytes it holds (`chunk` undefined: the next pipelined request). Malformed input is answered
   * with its status and closes; anything else thrown is a bug of ours: this connection gets a
   * 500 and closes, the worker and its other connections go on. False once the connection ends.
   */
  private decodeSafely(chunk: Buffer | undefined): boolean {
    try {
      if (chunk) this.decoder.feed(chunk);
      else this.decoder.resume();
      return true;
    } catch (err) {
      if (err instanceof HttpParseError) {
        this.reject(err);
      } else {
        this.ctx.logger.error({ conn: this.id, listener: this.snap.listener.name, err }, 'internal error handling a request; connection closed');
        this.reject(new ShuttleError('SHUTTLE_E_INTERNAL', 'internal'));
      }
      return false;
    }
  }

  private onHead(head: RequestHead): void {
    this.headTimer.cancel();
    if (this.streamIdleQueue) this.idleTimer.arm(this.streamIdleQueue);
    else this.idleTimer.cancel();
    this.requestInProgress = true;
    this.snap.telemetry.row[this.snap.telemetry.layout.listener(this.snap.listenerIndex) + L.downstream_rq_total]++;
    const stream = new HttpStream(head, this, this.ctx);
    this.current = stream;
    stream.start();
  }

  private onRequestComplete(): void {
    this.requestInProgress = false;
    if (this.current) this.current.onRequestComplete();
    else if (this.resumeAfterRequest) {
      // The response went out before the request ended (a local reply): next request now.
      this.resumeAfterRequest = false;
      queueMicrotask(() => this.resumeDecoding());
    }
  }

  /** Malformed input (or our own failure): its status when no response is under way, then close. */
  private reject(err: ShuttleError, status = err.httpStatus || 500): void {
    this.headTimer.cancel();
    this.closing = true;
    const stream = this.current;
    if (err.source === 'downstream') this.ctx.logger.info({ conn: this.id, listener: this.snap.listener.name, status, error: err.code, reason: err.message }, 'bad request');
    if (stream) {
      const sent = stream.responseSent;
      this.current = undefined; // so that the aborted stream does not end the connection itself
      stream.abort();
      if (sent) {
        this.socket.destroy();
        return;
      }
    }
    this.socket.end(localReply(status, `${err.message}\n`, { close: true, code: err.code }), 'latin1');
    this.socket.destroySoon();
  }

  streamDone(stream: HttpStream, close: boolean): void {
    if (this.current !== stream) return;
    this.current = undefined;
    this.idleTimer.arm(this.idleQueue);
    if (close || this.closing) {
      this.closing = true;
      this.socket.end();
      return;
    }
    if (this.socket.writableNeedDrain) {
      // The client is not reading its responses: the next pipelined request waits until it
      // does, so that unread responses stay bounded (and so does what we read from it).
      this.pauseReading();
      this.socket.once('drain', () => {
        if (this.current || this.closing) return;
        this.resumeReading();
        this.nextRequest();
      });
      return;
    }
    this.resumeReading();
    this.nextRequest();
  }

  private nextRequest(): void {
    if (this.requestInProgress) this.resumeAfterRequest = true;
    else this.resumeDecoding();
  }

  /** Decodes the next pipelined request, if one is waiting: malformed, it is answered and closes. */
  private resumeDecoding(): void {
    this.decodeSafely(undefined);
  }

  streamActive(): void {
    if (this.current !== undefined && this.streamIdleQueue !== undefined) this.idleTimer.arm(this.streamIdleQueue);
  }

  becomeTunnel(stream: HttpStream): Buffer | undefined {
    this.current = undefined;
    this.tunnel = stream;
    // A tunnel has no requests: idle means no byte either way.
    this.idleTimer.cancel();
    this.socket.setTimeout(this.snap.listener.idle_timeout, () => this.socket.destroy());
    return this.decoder.detach();
  }

  pauseReading(): void {
    if (!this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  resumeReading(): void {
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }
}
