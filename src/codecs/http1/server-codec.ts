/**
 * HTTP/1.1 server codec: one downstream connection's bytes ⇄ request streams.
 *
 *   socket bytes ─▶ RequestDecoder ─▶ head ─▶ newStream(encoder) ─▶ decodeHeaders / decodeData / decodeTrailers
 *   encodeHeaders / encodeData / encodeTrailers ─▶ status line, fields, framing (Content-Length,
 *   chunked, or close-delimited for HTTP/1.0) ─▶ SocketOutput (one write per event)
 *
 * One request at a time: pipelined requests wait in the decoder until the response before them is
 * done, so responses leave in order; a client that does not read its responses is not read
 * either. Malformed input is answered with its status and the connection closes. After a 101 the
 * stream carries the tunnel's raw bytes both ways.
 */
import type net from 'node:net';
import { STATUS_CODES } from 'node:http';
import { ShuttleError } from '../../errors.ts';
import type { ServerCodec, ServerCodecCallbacks, StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks } from '../../layers.ts';
import { Deadline, type DeadlineOwner, type DeadlineQueue } from '../../stream/deadlines.ts';
import { HeaderMap, isConnectionField, CONNECTION_FIELDS } from '../../stream/header-map.ts';
import { onBatchedData, onBatchedSharedReads, SocketOutput, type OutputOwner } from '../../stream/socket-output.ts';

/** Every downstream HTTP/1 connection of the thread reads into this (reads are handled one at a time). */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);
import { resumeReading, stopReading } from '../../upgrade/migration.ts';
import { RequestDecoder, type DecoderHandler } from './decoder.ts';
import { HttpParseError } from './errors.ts';
import { validHost, type HeadLimits, type RequestHead } from './head.ts';
import { fieldLines, STAGED_BODY_BYTES, writeResponseHead } from './head-writer.ts';

/** How long an idle connection is kept after goAway(), for a request already on its way. */
const GO_AWAY_IDLE_GRACE_MS = 1_000;

/** Pipelined bytes buffered beyond this pause reading until the current request is done. */
const MAX_PIPELINED_BYTES = 1024 * 1024;

const EMPTY = Buffer.alloc(0);

export interface Http1ServerOptions {
  readonly limits: HeadLimits;
  readonly maxBodyBytes: number;
  /** request_headers_timeout: a head that has begun must be complete within it (408). */
  readonly headersTimeout: DeadlineQueue;
  /** `:scheme` of requests on this connection. */
  readonly scheme: string;
  /** After a 101 the connection is a tunnel with no requests: it closes after this long with no byte either way. */
  readonly tunnelIdleTimeoutMs: number;
  /** The connection's byte counters: row[rxCell] and row[txCell] grow by what moves. */
  readonly stats: { readonly row: Float64Array; readonly rxCell: number; readonly txCell: number };
}

/** A response made by the codec itself (malformed requests): latin1 text, Connection: close. */
export function codecReply(status: number, error: ShuttleError): string {
  const body = `${error.message}\n`;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-shuttle-error: ${error.code}\r\nconnection: close\r\n\r\n${body}`;
}

export class Http1ServerCodec implements ServerCodec, OutputOwner, DecoderHandler<RequestHead>, DeadlineOwner {
  readonly protocol = 'HTTP/1.1';
  readonly socket: net.Socket;
  private readonly callbacks: ServerCodecCallbacks;
  private readonly opts: Http1ServerOptions;
  private readonly decoder: RequestDecoder;
  readonly output: SocketOutput;
  /** The request being served; pipelined ones wait in the decoder. */
  private current: Http1ServerStream | undefined;
  /** Bytes of a head have arrived (and its stream is not made yet): counts as busy. */
  private headStarted = false;
  private readonly headTimer: Deadline;
  /** No new request is taken: the socket ends after the current response. */
  private closing = false;
  /** goAway() was called: every response says Connection: close (and ends the connection). */
  private goingAwayFlag = false;
  private readPauses = 0;
  /** Reads go into sharedReadBuffer (see start()). */
  private sharedReads = false;
  /** The current request's bytes are still arriving (its response may already be done). */
  private requestInProgress = false;
  private resumeAfterRequest = false;
  private closed = false;

  constructor(socket: net.Socket, callbacks: ServerCodecCallbacks, opts: Http1ServerOptions) {
    this.socket = socket;
    this.callbacks = callbacks;
    this.opts = opts;
    this.output = new SocketOutput(socket, this);
    this.headTimer = new Deadline(this); // (deadlineExpired: a head begun and not complete in time)
    // (The codec is its decoder's handler: no closures per connection.)
    this.decoder = new RequestDecoder(this, { limits: opts.limits, maxBodyBytes: opts.maxBodyBytes, payloadOnly: true, volatileInput: true });
  }

  get tunnelIdleTimeoutMs(): number {
    return this.opts.tunnelIdleTimeoutMs;
  }

  /** goAway() was called (drain): responses say Connection: close. */
  get goingAway(): boolean {
    return this.goingAwayFlag || this.closing;
  }

  get activeStreams(): number {
    return this.current !== undefined || this.headStarted ? 1 : 0;
  }

  start(initial?: Buffer): void {
    const s = this.socket;
    s.setNoDelay(true);
    // Reads land in the thread's shared buffer (net/socket-io.ts): no Buffer and no stream work
    // per read. What must outlive a read is copied: a split head (the decoder), body bytes, tunnel
    // bytes. Sockets that cannot (TLS, or internals missing) read through 'data' as before.
    this.sharedReads = onBatchedSharedReads(s, sharedReadBuffer, (chunk) => this.onData(chunk));
    if (!this.sharedReads) onBatchedData(s, (chunk) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('error', noop);
    s.on('close', () => this.onClose()); // ('close' comes once: no once() wrapper per connection)
    if (initial) this.onData(initial);
    s.resume();
  }

  /**
   * Drain: the current response says Connection: close and the connection ends after it. An idle
   * connection is kept a moment: a client about to send its next request gets it answered (with
   * Connection: close) instead of racing our FIN, the race that fails keep-alive requests.
   */
  goAway(): void {
    if (this.goingAwayFlag || this.closing) return;
    this.goingAwayFlag = true;
    if (this.current !== undefined || this.headStarted) return;
    setTimeout(() => {
      if (this.current === undefined && !this.headStarted) this.endSocket();
    }, GO_AWAY_IDLE_GRACE_MS).unref();
  }

  close(): void {
    this.socket.destroy();
  }

  // ---- OutputOwner --------------------------------------------------------------------------

  onWritten(bytes: number): void {
    this.opts.stats.row[this.opts.stats.txCell] += bytes;
  }

  onFull(): void {
    const stream = this.current;
    if (stream === undefined) return;
    stream.writeCallbacks?.onAboveWriteHighWatermark();
    this.socket.once('drain', () => stream.writeCallbacks?.onBelowWriteLowWatermark());
  }

  // ---- reading ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.opts.stats.row[this.opts.stats.rxCell] += chunk.length;
    const current = this.current;
    if (current !== undefined && current.tunneling) return current.tunnelData(this.sharedReads ? Buffer.from(chunk) : chunk);
    if (this.closing && current === undefined) return;
    if (current === undefined && !this.headStarted) {
      // The next request has begun: from here its head has request_headers_timeout to arrive.
      this.headStarted = true;
      this.headTimer.arm(this.opts.headersTimeout);
      this.callbacks.onStreamCountChanged(1);
    }
    if (!this.decodeSafely(chunk)) return;
    if (this.decoder.paused && this.decoder.buffered > MAX_PIPELINED_BYTES) this.readDisable(true);
  }

  private onEnd(): void {
    const current = this.current;
    if (current !== undefined && current.tunneling) return current.tunnelData(EMPTY, true);
    // A half-closed client with a request in flight still gets its response.
    if (current === undefined) this.endSocket();
  }

  private onClose(): void {
    this.closed = true;
    this.headTimer.cancel();
    const current = this.current;
    this.current = undefined;
    current?.connectionLost();
    this.callbacks.onClose();
  }

  /**
   * Runs the decoder (and through it the stream's start) on new bytes, or on the bytes it holds
   * (`chunk` undefined: the next pipelined request). Malformed input is answered with its status
   * and closes; anything else thrown is a bug of ours: this connection gets a 500 and closes, the
   * worker and its other connections go on. False once the connection ends.
   */
  private decodeSafely(chunk: Buffer | undefined): boolean {
    try {
      if (chunk) this.decoder.feed(chunk);
      else this.decoder.resume();
      return true;
    } catch (err) {
      this.reject(err instanceof ShuttleError && err.source !== 'internal' ? err : new ShuttleError('SHUTTLE_E_INTERNAL', 'internal', `internal error: ${(err as Error).message}`, { cause: err }));
      return false;
    }
  }

  /** The head timer: request_headers_timeout passed with a head begun and not complete. */
  deadlineExpired(): void {
    this.reject(new HttpParseError('SHUTTLE_E_HTTP_HEADERS_TIMEOUT', 'request header timeout'));
  }

  // ---- DecoderHandler (the request decoder's) ---------------------------------------------------

  onHead(head: RequestHead): void {
    this.headTimer.cancel();
    this.headStarted = false;
    this.requestInProgress = true;
    const headers = requestHeaders(head, this.opts.scheme);
    const stream = new Http1ServerStream(this, head);
    this.current = stream;
    // Bodies: Content-Length or chunked; an upgrade request's stream goes on as its tunnel after a 101.
    const endStream = !head.chunked && head.contentLength <= 0;
    stream.decoder = this.callbacks.newStream(stream);
    stream.decoder.decodeHeaders(headers, endStream);
  }

  /** Body bytes outlive the read (retries, filters, a slow upstream): ours, when the read buffer is shared. */
  onBody(chunk: Buffer, last: boolean): void {
    this.current?.onBody(this.sharedReads ? Buffer.from(chunk) : chunk, last);
  }

  onComplete(trailers: string[]): void {
    this.requestInProgress = false;
    const current = this.current;
    if (current !== undefined) current.onRequestComplete(trailers);
    else if (this.resumeAfterRequest) {
      // The response went out before the request ended (a local reply): next request now.
      this.resumeAfterRequest = false;
      queueMicrotask(() => this.nextRequest());
    }
  }

  /** Malformed input (or our own failure): its status when no response is under way, then close. */
  reject(err: ShuttleError): void {
    this.headTimer.cancel();
    this.headStarted = false;
    this.closing = true;
    this.callbacks.onCodecError(err);
    const stream = this.current;
    if (stream !== undefined) {
      this.current = undefined; // the aborted stream must not end the connection itself
      const started = stream.started;
      stream.decoder?.onReset('protocol-error', err);
      if (started) {
        this.socket.destroy();
        return;
      }
    }
    this.output.push(codecReply(err.httpStatus || 500, err));
    this.endSocket();
  }

  private endSocket(): void {
    // Ending twice (our Connection: close, then the client's FIN) would make Node build an
    // ERR_STREAM_ALREADY_FINISHED with its stack trace: a few µs on every closed connection.
    if (this.closed || this.socket.writableEnded) return;
    this.output.flush();
    this.socket.end();
  }

  // ---- per stream ---------------------------------------------------------------------------

  readDisable(disable: boolean): void {
    if (disable) {
      if (this.readPauses++ === 0) this.socket.pause();
    } else if (this.readPauses > 0 && --this.readPauses === 0) {
      this.socket.resume();
    }
  }

  /** The current response is complete (or the stream was reset with nothing sent). */
  streamDone(stream: Http1ServerStream, close: boolean): void {
    if (this.current !== stream) return;
    this.current = undefined;
    this.readPauses = 0;
    if (close || this.closing || this.goingAwayFlag) {
      this.closing = true;
      this.endSocket();
      return;
    }
    this.callbacks.onStreamCountChanged(0);
    if (this.socket.writableNeedDrain) {
      // The client is not reading its responses: the next pipelined request waits until it
      // does, so that unread responses stay bounded (and so does what we read from it).
      this.socket.pause();
      this.socket.once('drain', () => {
        if (this.current || this.closing) return;
        this.socket.resume();
        this.nextRequestOrWait();
      });
      return;
    }
    this.socket.resume();
    this.nextRequestOrWait();
  }

  private nextRequestOrWait(): void {
    if (this.requestInProgress) this.resumeAfterRequest = true;
    else this.nextRequest();
  }

  /** Decodes the next pipelined request, if one is waiting. */
  private nextRequest(): void {
    if (this.closed || this.closing) return;
    if (this.decoder.buffered > 0) {
      this.headStarted = true;
      this.headTimer.arm(this.opts.headersTimeout);
      this.callbacks.onStreamCountChanged(1);
    }
    this.decodeSafely(undefined);
  }

  /**
   * Connection migration (an upgrade): at an idle moment (no request under way, no byte of the
   * next one read, the client reading its responses) stops reading at the handle, so the next
   * request waits in the kernel for the new process. False when busy: ask again when idle.
   */
  pauseForMigration(): boolean {
    if (this.closed || this.closing || this.goingAwayFlag || this.current !== undefined || this.headStarted || this.requestInProgress) return false;
    if (this.decoder.buffered > 0 || this.socket.readableLength > 0 || this.readPauses > 0 || this.socket.writableNeedDrain) return false;
    stopReading(this.socket);
    return true;
  }

  /** The migration was rolled back: this process serves the connection on. */
  resumeAfterMigration(): void {
    resumeReading(this.socket);
  }

  /** A 101 went out: what the decoder holds beyond the request is the tunnel's first bytes. */
  detachDecoder(): Buffer | undefined {
    return this.decoder.detach();
  }
}

function noop(): void {}

/**
 * Connection tokens (lower-case) that name fields to drop besides the connection fields every
 * encoder skips anyway; undefined when there is none (the usual keep-alive, close, upgrade).
 */
function namedConnectionFields(tokens: ReadonlySet<string>): Set<string> | undefined {
  let names: Set<string> | undefined;
  for (const t of tokens) {
    if (t === 'close' || CONNECTION_FIELDS.has(t)) continue;
    (names ??= new Set()).add(t);
  }
  return names;
}

/** The request head as a HeaderMap: the parser's field list is reused, not copied. */
function requestHeaders(head: RequestHead, scheme: string): HeaderMap {
  let path = head.target;
  let authority = head.host ?? '';
  // absolute-form (a client talking to a forward proxy): the authority is in the target.
  if (path.charCodeAt(0) !== 47 /* / */) {
    const abs = /^https?:\/\/([^/?#]*)(.*)$/i.exec(path);
    if (abs) {
      if (!validHost(abs[1])) throw new HttpParseError('SHUTTLE_E_HTTP_BAD_REQUEST', 'invalid authority in the request target');
      authority = abs[1];
      path = abs[2] || '/';
    } else if (path !== '*' || head.method !== 'OPTIONS') {
      if (head.method !== 'CONNECT') throw new HttpParseError('SHUTTLE_E_HTTP_BAD_REQUEST', 'invalid request target');
    }
  }
  const h = HeaderMap.request(head.method, path, authority, scheme, head.headers);
  h.contentLength = head.contentLength;
  if (head.upgrade !== undefined) h.upgrade = head.upgrade;
  const drop = head.connection.size > 0 ? namedConnectionFields(head.connection) : undefined;
  if (drop !== undefined) {
    // Fields the client named in Connection are its hop's only (and dropping them never touches
    // framing: encoders write that from contentLength).
    h.fields = head.headers.slice();
    h.removeAll(drop);
  }
  return h;
}

/** Response framing chosen when the head is written. */
const Framing = { Length: 0, Chunked: 1, UntilClose: 2, None: 3 } as const;

export class Http1ServerStream implements StreamEncoder {
  readonly protocol: 'HTTP/1.0' | 'HTTP/1.1';
  decoder: StreamDecoder | undefined;
  writeCallbacks: StreamWriteCallbacks | undefined;
  bytesSent = 0;
  started = false;
  tunneling = false;
  private readonly conn: Http1ServerCodec;
  private readonly keepAlive: boolean;
  private readonly headRequest: boolean;
  private readonly upgradeRequested: boolean;
  private framing: number = Framing.Length;
  private ended = false;
  private closeAfter = false;
  /** The decoder finished the request message. */
  private requestComplete = false;
  /** The stream's decoder was told the request ended (end of body, or no body). */
  private requestEnded = false;

  constructor(conn: Http1ServerCodec, head: RequestHead) {
    this.conn = conn;
    this.protocol = head.versionMinor === 1 ? 'HTTP/1.1' : 'HTTP/1.0';
    this.keepAlive = head.keepAlive;
    this.headRequest = head.method === 'HEAD';
    this.upgradeRequested = head.upgrade !== undefined;
    this.requestComplete = !head.chunked && head.contentLength <= 0;
    this.requestEnded = this.requestComplete;
  }

  // ---- request side (from the codec) --------------------------------------------------------

  onBody(chunk: Buffer, last: boolean): void {
    if (last) this.requestEnded = true;
    this.decoder?.decodeData(chunk, last);
  }

  onRequestComplete(trailers: string[]): void {
    this.requestComplete = true;
    if (!this.requestEnded) {
      this.requestEnded = true;
      if (trailers.length > 0) this.decoder?.decodeTrailers(new HeaderMap(trailers));
      else this.decoder?.decodeData(EMPTY, true);
    }
    if (this.ended) this.conn.streamDone(this, this.closeAfter);
  }

  /** Tunnel bytes from the client after a 101 (`end`: the client closed its side). */
  tunnelData(chunk: Buffer, end = false): void {
    this.decoder?.decodeData(chunk, end);
  }

  connectionLost(): void {
    if (this.ended && !this.tunneling) return;
    this.ended = true;
    this.decoder?.onReset('connection-termination', new ShuttleError('SHUTTLE_E_DOWNSTREAM_RESET', 'downstream'));
  }

  // ---- StreamEncoder ------------------------------------------------------------------------

  encodeInformational(headers: HeaderMap): void {
    // HTTP/1.0 clients know no interim responses.
    if (this.protocol === 'HTTP/1.0' || this.started) return;
    this.push(statusLine(headers.status) + fieldLines(headers.fields) + '\r\n');
  }

  encodeHeaders(headers: HeaderMap, endStream: boolean): void {
    if (this.started || this.ended) return;
    this.started = true;
    const status = headers.status;
    if (status === 101 && this.upgradeRequested) {
      this.push(`${statusLine(status)}${fieldLines(headers.fields)}Connection: upgrade\r\nUpgrade: ${headers.upgrade}\r\n\r\n`);
      this.tunneling = true;
      this.conn.socket.setTimeout(this.conn.tunnelIdleTimeoutMs, () => this.conn.socket.destroy());
      const rest = this.conn.detachDecoder();
      if (rest !== undefined && rest.length > 0) queueMicrotask(() => this.tunnelData(rest));
      return;
    }
    // The framing and connection lines, after the fields (the head is written in place: head-writer.ts).
    let out = '';
    const noBody = this.headRequest || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) {
      this.framing = Framing.None;
      if (headers.contentLength >= 0 && status !== 204) out += `Content-Length: ${headers.contentLength}\r\n`;
    } else if (endStream) {
      out += 'Content-Length: 0\r\n';
    } else if (headers.contentLength >= 0) {
      out += `Content-Length: ${headers.contentLength}\r\n`;
    } else if (this.protocol === 'HTTP/1.1') {
      this.framing = Framing.Chunked;
      out += 'Transfer-Encoding: chunked\r\n';
    } else {
      // An HTTP/1.0 client and no length: the body ends with the connection.
      this.framing = Framing.UntilClose;
      this.closeAfter = true;
    }
    // A response before its request ended (an early error): the rest of the request can't be
    // framed any more, so the connection closes after it; say so.
    if (!this.keepAlive || this.conn.goingAway || !this.requestEnded) this.closeAfter = true;
    if (this.closeAfter) out += 'Connection: close\r\n';
    else if (this.protocol === 'HTTP/1.0') out += 'Connection: keep-alive\r\n';
    this.bytesSent += writeResponseHead(this.conn.output, statusLine(status), headers.fields, out + '\r\n');
    if (endStream || this.framing === Framing.None) this.end();
  }

  encodeData(data: Buffer, endStream: boolean, volatile = false): void {
    if (this.ended && !this.tunneling) return;
    if (this.tunneling) {
      if (data.length > 0) this.push(data, volatile);
      if (endStream) {
        this.conn.output.flush();
        this.conn.socket.end();
      }
      return;
    }
    if (data.length > 0 && this.framing !== Framing.None) {
      if (this.framing === Framing.Chunked) {
        this.push(`${data.length.toString(16)}\r\n`);
        this.push(data, volatile);
        this.push(endStream ? '\r\n0\r\n\r\n' : '\r\n');
      } else if (data.length <= STAGED_BODY_BYTES) {
        this.bytesSent += data.length;
        this.conn.output.pushCopy(data, 0, data.length);
      } else {
        this.push(data, volatile);
      }
    } else if (endStream && this.framing === Framing.Chunked) {
      this.push('0\r\n\r\n');
    }
    if (endStream) this.end();
  }

  encodeTrailers(trailers: HeaderMap): void {
    if (this.ended) return;
    if (this.framing === Framing.Chunked) this.push(`0\r\n${fieldLines(trailers.fields)}\r\n`);
    this.end();
  }

  reset(_reason: StreamResetReason): void {
    if (this.ended && !this.tunneling) return;
    this.ended = true;
    // HTTP/1 has no stream reset: the only honest signal is to cut the connection.
    this.conn.socket.destroy();
  }

  readDisable(disable: boolean): void {
    this.conn.readDisable(disable);
  }

  setWriteCallbacks(callbacks: StreamWriteCallbacks): void {
    this.writeCallbacks = callbacks;
  }

  private push(piece: string | Buffer, volatile = false): void {
    this.bytesSent += piece.length;
    this.conn.output.push(piece, volatile);
  }

  private end(): void {
    this.ended = true;
    // A response that went out before its request ended (an early error): the rest of the
    // request can't be framed any more, so the connection closes after it.
    if (!this.requestEnded) this.closeAfter = true;
    this.conn.streamDone(this, this.closeAfter);
  }
}

/** Status lines built once (a template per response showed in profiles as string building). */
const STATUS_LINES: string[] = [];

function statusLine(status: number): string {
  return (STATUS_LINES[status] ??= `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`);
}

