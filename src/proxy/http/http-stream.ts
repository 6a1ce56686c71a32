/**
 * One HTTP request through the proxy, from its head to the end of its response.
 *
 * ```mermaid
 * flowchart LR
 *   head[request head] --> route{route?}
 *   route -- none --> r404[404 local reply]
 *   route -- direct / redirect --> local[local reply]
 *   route -- cluster --> pick[pick host: lb, skip tried]
 *   pick -- none --> r503[503]
 *   pick --> pool[pool: reuse or connect]
 *   pool -- connect failure --> retry{retry?}
 *   pool --> send[send head + body]
 *   send --> resp[response head]
 *   resp -- retriable status, nothing sent yet --> retry
 *   send -- reset before response --> retry
 *   retry -- yes --> pick
 *   retry -- no --> err[502 / 503 / 504]
 *   resp --> stream[stream body downstream] --> done[access log, reuse connection]
 * ```
 */
import type net from 'node:net';
import { ChunkedScanner } from '../../codecs/http1/chunked.ts';
import { ResponseDecoder } from '../../codecs/http1/decoder.ts';
import { HttpParseError } from '../../codecs/http1/errors.ts';
import { validHost, type RequestHead, type ResponseHead } from '../../codecs/http1/head.ts';
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import { ShuttleError } from '../../errors.ts';
import type { Route } from '../../router/router.ts';
import { H, L } from '../../shared/stats-table.ts';
import type { ConnectionUser, UpstreamConnection } from '../../stream/http1-pool.ts';
import { writeJoined } from '../../stream/joined-write.ts';
import { Deadline, deadlines } from '../../stream/deadlines.ts';
import type { HttpListenerSnapshot, HttpProxyContext } from './context.ts';
import { downstreamResponseHead, localReply, upstreamRequestHead } from './messages.ts';

/** 1xx responses accepted before the final one (a flood of them is a broken or hostile upstream). */
const MAX_INTERIM_RESPONSES = 8;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

type FailureKind = 'connect-failure' | 'reset' | 'status';

/** The downstream connection, as a stream sees it. */
export interface StreamOwner {
  readonly socket: net.Socket;
  readonly clientIp: string;
  readonly id: string;
  /** The stream ended; `close` asks the connection to close after what was written. */
  streamDone(stream: HttpStream, close: boolean): void;
  /** The request's remaining bytes become a raw tunnel (after 101 Switching Protocols). */
  becomeTunnel(stream: HttpStream): Buffer | undefined;
  pauseReading(): void;
  resumeReading(): void;
  /** Bytes of the current request or its response moved: its stream idle timer starts again. */
  streamActive(): void;
}

/** What routing sees of a request: its header() walks the parsed fields only when a route asks. */
class RequestView {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  private readonly headers: string[];

  constructor(head: RequestHead, path: string, query: string) {
    this.method = head.method;
    this.path = path;
    this.query = query;
    this.headers = head.headers;
  }

  /** Values of a (lower-cased) field name, joined with "," as RFC 9110 allows; undefined if absent. */
  header(name: string): string | undefined {
    const headers = this.headers;
    let found: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i].length === name.length && headers[i].toLowerCase() === name) found = found === undefined ? headers[i + 1] : `${found},${headers[i + 1]}`;
    }
    return found;
  }
}

export class HttpStream implements ConnectionUser {
  readonly head: RequestHead;
  private readonly ctx: HttpProxyContext;
  /** The config generation this request started under: it finishes under it too. */
  private readonly snap: HttpListenerSnapshot;
  private readonly owner: StreamOwner;
  /** For the access log's duration (0 when the listener logs no access lines). */
  private readonly startedAt: number;
  private route: Route | undefined;
  private cluster: Cluster | undefined;
  private path = '/';
  private authority = '';

  private readonly tried = new Set<Host>();
  private retries = 0;
  private staleRetried = false;
  private holdingRetryToken = false;
  private conn: UpstreamConnection | undefined;
  private cancelWait: (() => void) | undefined;
  private decoder: ResponseDecoder | undefined;
  private dechunker: ChunkedScanner | undefined;
  private responseBytesSeen = false;

  /** Request body kept for a retry, while it fits the retry buffer. */
  private readonly body: Buffer[] = [];
  private bodyBytes = 0;
  private bodyReplayable = true;
  private requestComplete = false;

  private responseHead: ResponseHead | undefined;
  private responseStarted = false;
  private bytesSent = 0;
  private status = 0;
  private error: ShuttleError | undefined;
  private finished = false;
  private closeAfter: boolean;
  private timeout: Deadline | undefined;
  private tryTimeout: Deadline | undefined;
  private tunneling = false;

  constructor(head: RequestHead, owner: StreamOwner, ctx: HttpProxyContext) {
    this.head = head;
    this.owner = owner;
    this.ctx = ctx;
    this.snap = ctx.snapshot();
    this.startedAt = this.snap.listener.access_log ? performance.now() : 0;
    this.snap.telemetry.streams(1);
    this.closeAfter = !head.keepAlive;
    // A request without a body is complete with its head.
    this.requestComplete = !head.chunked && head.contentLength <= 0;
  }

  start(): void {
    const head = this.head;
    let target = head.target;
    this.authority = head.host ?? '';
    // No route tunnels (CONNECT needs an explicit route action that Shuttle does not have yet).
    if (head.method === 'CONNECT') return this.reply(405, 'CONNECT is not allowed here\n', 'SHUTTLE_E_HTTP_METHOD_NOT_ALLOWED', [['allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE']]);
    // absolute-form (a client talking to a forward proxy): the authority is in the target.
    if (target.charCodeAt(0) !== 47 /* / */) {
      const abs = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
      if (abs) {
        if (!validHost(abs[1])) return this.rejectRequest('invalid authority in the request target');
        this.authority = abs[1];
        target = abs[2] || '/';
      } else if (target !== '*' || head.method !== 'OPTIONS') {
        return this.rejectRequest('invalid request target');
      }
    }
    const q = target.indexOf('?');
    this.path = q < 0 ? target : target.slice(0, q);
    const route = this.snap.router.route(this.authority, new RequestView(head, this.path, q < 0 ? '' : target.slice(q + 1)));
    this.route = route;
    if (!route) return this.fail(new ShuttleError('SHUTTLE_E_NO_ROUTE', 'downstream', `no route for ${this.authority}${this.path}`));
    const cfg = route.config;
    if (cfg.direct_response) return this.reply(cfg.direct_response.status, cfg.direct_response.body);
    if (cfg.redirect) return this.redirect(cfg.redirect, target);

    const clusterName = route.cluster();
    const cluster = clusterName ? this.snap.clusters.get(clusterName) : undefined;
    if (!cluster) return this.fail(new ShuttleError('SHUTTLE_E_NO_CLUSTER', 'internal', `cluster ${clusterName} not found`));
    this.cluster = cluster;
    // Expect: 100-continue is answered here (Envoy's default) and not forwarded: the client sends
    // its body now, whether or not the upstream would ever have said 100.
    if (head.expectContinue && head.versionMinor === 1 && !this.requestComplete) this.write('HTTP/1.1 100 Continue\r\n\r\n');
    this.ctx.retryBudget.requestStarted(cluster);
    if (route.timeout > 0) {
      this.timeout = new Deadline(() => this.onTimeout());
      this.timeout.arm(deadlines.queue(route.timeout));
    }
    this.attempt();
  }

  // ---- request body from downstream -------------------------------------------------------

  onRequestBody(chunk: Buffer): void {
    if (this.finished) return;
    this.owner.streamActive();
    if (this.bodyReplayable) {
      this.bodyBytes += chunk.length;
      if (this.bodyBytes <= this.snap.listener.http.retry_buffer_bytes) {
        this.body.push(chunk);
        if (!this.conn) return; // sent with the head once connected
      } else {
        this.bodyReplayable = false;
        // Not sent yet: what was kept still has to go; once sent, it is no longer needed.
        if (!this.conn) this.pendingBody.push(...this.body);
        this.body.length = 0;
      }
    }
    const conn = this.conn;
    if (conn && !conn.socket.destroyed) {
      if (!conn.socket.write(chunk)) {
        this.owner.pauseReading();
        conn.socket.once('drain', () => this.owner.resumeReading());
      }
    } else if (!this.bodyReplayable) {
      // Not connected yet and too much to keep: stop reading until a connection takes it.
      this.pendingBody.push(chunk);
      this.owner.pauseReading();
    }
  }

  private readonly pendingBody: Buffer[] = [];

  onRequestComplete(): void {
    this.requestComplete = true;
    if (this.responseHead && this.decoderDone) this.complete();
  }

  // ---- upstream ---------------------------------------------------------------------------

  private attempt(): void {
    const cluster = this.cluster!;
    const host = cluster.lb.choose(this.tried);
    if (!host) {
      this.fail(this.error ?? new ShuttleError('SHUTTLE_E_NO_HEALTHY_HOST', 'internal', `cluster ${cluster.name} has no healthy host`));
      if (this.tried.size === 0) this.snap.telemetry.noHealthyHost(cluster.index);
      return;
    }
    this.tried.add(host);
    const pool = this.ctx.pools.get(host, cluster, this.snap.telemetry);
    this.cancelWait = pool.acquire((err, conn) => {
      this.cancelWait = undefined;
      if (this.finished) {
        if (conn) pool.release(conn, true);
        return;
      }
      if (err || !conn) return this.failed(err!, err!.code === 'SHUTTLE_E_UPSTREAM_OVERFLOW' ? 'status' : 'connect-failure', host);
      this.send(conn);
    }, this.route!.timeout);
  }

  private send(conn: UpstreamConnection): void {
    this.conn = conn;
    conn.take(this);
    const row = this.snap.telemetry.row;
    row[this.snap.telemetry.layout.host(conn.host.index) + H.upstream_rq_total]++;
    this.responseBytesSeen = false;
    // Callbacks of an attempt that was given up on (a retried 503 still being parsed) are dropped.
    // Upstream bytes are views of a reused read buffer (see Http1Pool): kept ones are copied.
    const decoder: ResponseDecoder = new ResponseDecoder({
      onHead: (h) => decoder === this.decoder && this.onResponseHead(h),
      onBody: (b) => decoder === this.decoder && this.onResponseBody(b),
      onComplete: () => decoder === this.decoder && this.onResponseComplete(),
    }, { volatileInput: true });
    decoder.expectResponseTo(this.head.method);
    this.decoder = decoder;
    const route = this.route!;
    const cfg = route.config;
    let target = this.head.target;
    if (cfg.prefix_rewrite !== undefined && cfg.match.prefix !== undefined && this.path.startsWith(cfg.match.prefix)) {
      target = cfg.prefix_rewrite + target.slice(cfg.match.prefix.length);
    }
    const head = upstreamRequestHead(this.head, route, {
      clientIp: this.owner.clientIp,
      target,
      host: cfg.host_rewrite ?? this.authority,
      originalHost: this.authority,
    });
    let pieces: (string | Buffer)[] = [head];
    let bytes = head.length;
    if (this.body.length > 0 || this.pendingBody.length > 0) {
      pieces = pieces.concat(this.body, this.pendingBody.splice(0));
      for (let i = 1; i < pieces.length; i++) bytes += pieces[i].length;
    }
    writeJoined(conn.socket, pieces, bytes);
    if (this.pendingBody.length === 0) this.owner.resumeReading();
    const perTry = route.retry?.per_try_timeout ?? 0;
    if (perTry > 0) {
      this.tryTimeout ??= new Deadline(() => this.conn && this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_TIMEOUT', 'upstream', `per-try timeout ${perTry}ms`), 'reset', this.conn.host));
      this.tryTimeout.arm(deadlines.queue(perTry));
    }
  }

  onData(chunk: Buffer): void {
    if (this.tunneling) {
      if (!this.owner.socket.write(Buffer.from(chunk))) { // a copy: the read buffer is reused
        this.conn?.socket.pause();
        this.owner.socket.once('drain', () => this.conn?.socket.resume());
      }
      return;
    }
    this.responseBytesSeen = true;
    this.owner.streamActive();
    const host = this.conn!.host;
    const decoder = this.decoder!;
    // Head and body bytes decoded from one upstream read leave in one write, not two.
    this.batching = true;
    try {
      decoder.feed(chunk);
      // After a 101, what followed the head in this read is the tunnel's first bytes.
      if (this.tunneling) {
        const rest = decoder.detach();
        if (rest !== undefined && rest.length > 0) this.write(rest);
      }
    } catch (err) {
      // Only this response's malformed bytes are ours to answer; anything else is a bug.
      if (!(err instanceof HttpParseError) || this.finished || decoder !== this.decoder) throw err;
      this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', err.message), 'reset', host);
    } finally {
      this.flush();
    }
  }

  onEnd(): void {
    if (this.tunneling) {
      this.owner.socket.end();
      return;
    }
    if (this.finished) return;
    // A close-delimited body ends here; anything else cut short is a reset.
    this.decoder?.end();
    if (!this.finished && !this.decoderDone) this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', 'upstream closed the connection before the response ended'), 'reset', this.conn!.host);
  }

  onClose(error: Error | undefined): void {
    if (this.tunneling) {
      this.owner.socket.destroy();
      this.finish();
      return;
    }
    if (this.finished || this.decoderDone) return;
    this.conn = undefined;
    this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', error ? error.message : 'upstream connection closed', { cause: error }), 'reset', [...this.tried].at(-1)!, true);
  }

  private decoderDone = false;
  /** The head just decoded was a 1xx: its completion is not the response's. */
  private interim = false;
  private interimCount = 0;
  /** The response body ends when the upstream closes: that connection cannot be reused. */
  private delimitedByClose = false;

  private onResponseHead(h: ResponseHead): void {
    if (h.status >= 100 && h.status < 200 && h.status !== 101) {
      // Interim response: 100 was answered by us already (or not asked for); others (103) go on
      // to an HTTP/1.1 client. An upstream that keeps sending them is broken.
      if (++this.interimCount > MAX_INTERIM_RESPONSES) {
        this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', `more than ${MAX_INTERIM_RESPONSES} interim responses`), 'reset', this.conn!.host);
        return;
      }
      if (h.status !== 100 && this.head.versionMinor === 1) this.write(downstreamResponseHead(h, undefined, { close: false, dechunk: false }));
      this.interim = true;
      return;
    }
    if (h.status === 101 && this.head.upgrade === undefined) {
      this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', 'upstream switched protocols without an Upgrade request'), 'reset', this.conn!.host);
      return;
    }
    this.tryTimeout?.cancel();
    if (!this.responseStarted && this.retriableStatus(h.status)) {
      this.failed(new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', `upstream answered ${h.status}`), 'status', this.conn!.host, false, h.status);
      return;
    }
    this.responseHead = h;
    this.status = h.status;
    if (h.status >= 500) this.snap.telemetry.row[this.snap.telemetry.layout.host(this.conn!.host.index) + H.upstream_rq_error]++;
    if (h.status === 101 && this.head.upgrade !== undefined) return this.tunnel(h);
    const downstreamOld = this.head.versionMinor === 0;
    const dechunk = downstreamOld && h.chunked;
    if (dechunk) this.dechunker = new ChunkedScanner('SHUTTLE_E_HTTP_BAD_RESPONSE');
    // Without a length the body ends with the connection: the client needs a close too.
    this.delimitedByClose = !h.chunked && h.contentLength < 0 && !(this.head.method === 'HEAD' || h.status === 204 || h.status === 304);
    if (dechunk || this.delimitedByClose || this.ctx.draining()) this.closeAfter = true;
    this.responseStarted = true;
    this.write(downstreamResponseHead(h, this.route, { close: this.closeAfter, dechunk }));
  }

  private onResponseBody(chunk: Buffer): void {
    if (this.dechunker) {
      this.dechunker.scan(chunk, 0, chunk.length, (b, from, to) => this.write(b.subarray(from, to)));
      return;
    }
    this.write(chunk);
  }

  private onResponseComplete(): void {
    if (this.tunneling) return; // a 101 has no body: what follows is the tunnel's
    if (this.interim) {
      this.interim = false;
      queueMicrotask(() => this.decoder?.resume()); // the final response follows
      return;
    }
    this.decoderDone = true;
    if (this.requestComplete) this.complete();
    else {
      // The upstream answered before the request ended (e.g. an early 413): the rest of the
      // request body can't be framed any more, so neither connection is reused.
      this.closeAfter = true;
      this.complete();
    }
  }

  private complete(): void {
    if (this.finished) return;
    const conn = this.conn;
    const reusable = this.requestComplete && !this.delimitedByClose && !!this.responseHead?.keepAlive && (this.decoder?.buffered ?? 0) === 0 && !!conn?.socket.readable;
    this.conn = undefined;
    if (conn) conn.release(reusable);
    this.finish();
  }

  /** Downstream bytes of the current upstream read, written together by flush(). */
  private batching = false;
  private out: (string | Buffer)[] = [];
  private outBytes = 0;

  /** Sends response bytes downstream (heads are latin1 strings: one byte per character). */
  private write(data: string | Buffer): void {
    this.out.push(data);
    this.outBytes += data.length;
    if (!this.batching) this.flush();
  }

  private flush(): void {
    this.batching = false;
    if (this.out.length === 0) return;
    this.bytesSent += this.outBytes;
    this.snap.telemetry.row[this.snap.telemetry.layout.listener(this.snap.listenerIndex) + L.downstream_cx_tx_bytes_total] += this.outBytes;
    const sock = this.owner.socket;
    const ok = sock.destroyed || writeJoined(sock, this.out, this.outBytes, true);
    this.out = []; // (a new array: truncating through .length is a slow runtime call)
    this.outBytes = 0;
    if (!ok && this.conn) {
      const up = this.conn.socket;
      up.pause();
      sock.once('drain', () => up.resume());
    }
  }

  private tunnel(h: ResponseHead): void {
    this.tunneling = true;
    this.timeout?.cancel();
    this.write(downstreamResponseHead(h, this.route, { close: false, dechunk: false }));
    // Upstream bytes after the head are taken from the decoder once this read is decoded (onData).
    const downLeft = this.owner.becomeTunnel(this);
    if (downLeft?.length) this.conn!.socket.write(downLeft);
  }

  /** Downstream bytes after a 101, straight to the upstream. */
  tunnelData(chunk: Buffer): void {
    const up = this.conn?.socket;
    if (!up) return;
    if (!up.write(chunk)) {
      this.owner.pauseReading();
      up.once('drain', () => this.owner.resumeReading());
    }
  }

  tunnelEnd(): void {
    this.conn?.socket.end();
  }

  // ---- failure, retries, local replies ------------------------------------------------------

  private retriableStatus(status: number): boolean {
    const p = this.route?.retry;
    if (!p || !this.mayRetry()) return false;
    return (p.retry_on.includes('5xx') && status >= 500) ||
      (p.retry_on.includes('gateway-error') && status >= 502 && status <= 504) ||
      (p.retry_on.includes('retriable-status-codes') && p.retriable_status_codes.includes(status));
  }

  private mayRetry(): boolean {
    const p = this.route?.retry;
    if (!p || this.retries >= p.num_retries || !this.bodyReplayable) return false;
    return p.retry_non_idempotent || IDEMPOTENT.has(this.head.method);
  }

  private policyRetries(kind: FailureKind): boolean {
    const p = this.route?.retry;
    if (!p || !this.mayRetry()) return false;
    if (kind === 'connect-failure') return p.retry_on.some((r) => r === 'connect-failure' || r === '5xx' || r === 'gateway-error');
    if (kind === 'reset') return p.retry_on.some((r) => r === 'reset' || r === '5xx' || r === 'gateway-error');
    return true; // retriable status already checked
  }

  /** An attempt failed; retry if allowed and nothing was sent downstream yet, else answer. */
  private failed(error: ShuttleError, kind: FailureKind, host: Host, connectionGone = false, status = 0): void {
    if (this.finished) return;
    this.tryTimeout?.cancel();
    const conn = this.conn;
    const staleKeepAlive = kind === 'reset' && !!conn && conn.reused && !this.responseBytesSeen;
    this.conn = undefined;
    this.decoder = undefined;
    this.decoderDone = false;
    if (conn && !connectionGone) conn.release(false);
    if (kind !== 'status' && this.status === 0 && status === 0) this.error = error;
    if (this.responseStarted) {
      // Part of the response is out: the only honest signal left is to cut the connection.
      this.error = error;
      this.owner.socket.destroy();
      this.finish();
      return;
    }
    // A reused keep-alive connection that the upstream had just closed: one silent retry on a
    // fresh connection (what nginx and Envoy do), if the request can be sent again.
    const canReplay = this.bodyReplayable && (IDEMPOTENT.has(this.head.method) || !!this.route?.retry?.retry_non_idempotent || this.bodyBytes === 0);
    if (staleKeepAlive && !this.staleRetried && canReplay) {
      this.staleRetried = true;
      this.tried.delete(host);
      this.attempt();
      return;
    }
    if (this.policyRetries(kind) && this.takeRetryToken()) {
      this.retries++;
      if (status) this.status = 0;
      this.attempt();
      return;
    }
    if (kind === 'status' && status) {
      // Out of retries on a retriable status: pass that status on with a body of our own.
      this.error = error;
      return this.reply(status, `upstream answered ${status}\n`, error.code);
    }
    this.fail(error);
  }

  private takeRetryToken(): boolean {
    if (!this.cluster) return false;
    if (this.holdingRetryToken) return true;
    if (!this.ctx.retryBudget.tryRetry(this.cluster)) return false;
    this.holdingRetryToken = true;
    return true;
  }

  private onTimeout(): void {
    this.timedOut(new ShuttleError('SHUTTLE_E_UPSTREAM_TIMEOUT', 'upstream', `no complete response within ${this.route?.timeout}ms`));
  }

  /** No byte of this request or its response moved for stream_idle_timeout (see HttpConnection). */
  onStreamIdle(): void {
    if (this.finished) return;
    const ms = this.snap.listener.http.stream_idle_timeout;
    if (!this.requestComplete && !this.responseStarted) {
      // The client stopped sending its body: that is its timeout, and the connection can't go on.
      this.error = new ShuttleError('SHUTTLE_E_STREAM_IDLE_TIMEOUT', 'downstream', `request body stalled for ${ms}ms`);
      this.dropUpstream();
      return this.reply(408, `${this.error.message}\n`, this.error.code);
    }
    this.timedOut(new ShuttleError('SHUTTLE_E_STREAM_IDLE_TIMEOUT', 'internal', `no byte moved for ${ms}ms`));
  }

  private timedOut(error: ShuttleError): void {
    if (this.finished) return;
    this.dropUpstream();
    if (this.responseStarted) {
      this.error = error;
      this.owner.socket.destroy();
      this.finish();
    } else {
      this.fail(error);
    }
  }

  private fail(error: ShuttleError): void {
    this.error = error;
    const status = error.httpStatus || 500;
    this.reply(status, `${error.message}\n`, error.code);
  }

  private reply(status: number, body: string, code?: string, headers?: [string, string][]): void {
    if (this.finished) return;
    this.status = status;
    // A request whose body is still arriving can't be followed by another on this connection.
    if (!this.requestComplete) this.closeAfter = true;
    if (this.ctx.draining()) this.closeAfter = true;
    this.write(localReply(status, body, { close: this.closeAfter, code, headers, head: this.head.method === 'HEAD' }));
    this.finish();
  }

  /** A request that parsed but cannot be served as it is: 400, and the connection closes. */
  private rejectRequest(reason: string): void {
    this.closeAfter = true;
    this.error = new ShuttleError('SHUTTLE_E_HTTP_BAD_REQUEST', 'downstream', reason);
    this.reply(400, `${reason}\n`, 'SHUTTLE_E_HTTP_BAD_REQUEST');
  }

  private redirect(r: NonNullable<Route['config']['redirect']>, target: string): void {
    let path = target;
    const prefix = this.route!.config.match.prefix;
    if (r.path !== undefined) path = r.path;
    else if (r.prefix_rewrite !== undefined && prefix !== undefined && target.startsWith(prefix)) path = r.prefix_rewrite + target.slice(prefix.length);
    const location = `${r.scheme ?? 'http'}://${r.host ?? this.authority}${path}`;
    this.reply(r.status, `redirecting to ${location}\n`, undefined, [['location', location]]);
  }

  /** True once response bytes went downstream: an error can then only cut the connection. */
  get responseSent(): boolean {
    return this.responseStarted || this.finished;
  }

  /** Gives up the upstream side: a wait for a connection, or the connection (never reused). */
  private dropUpstream(): void {
    this.cancelWait?.();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) conn.release(false);
  }

  /** Stops the stream without a reply (the downstream connection is gone). */
  abort(): void {
    if (this.finished) return;
    this.error ??= new ShuttleError('SHUTTLE_E_DOWNSTREAM_RESET', 'downstream');
    this.dropUpstream();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.flush(); // before the connection moves on to a pipelined request's response
    this.snap.telemetry.streams(-1);
    this.timeout?.cancel();
    this.tryTimeout?.cancel();
    if (this.cluster) {
      this.ctx.retryBudget.requestEnded(this.cluster);
      if (this.holdingRetryToken) this.ctx.retryBudget.retryEnded(this.cluster);
    }
    if (this.snap.listener.access_log) {
      this.ctx.logger.info({
        msg: 'access',
        conn: this.owner.id,
        listener: this.snap.listener.name,
        method: this.head.method,
        authority: this.authority,
        path: this.path,
        protocol: this.head.versionMinor === 1 ? 'HTTP/1.1' : 'HTTP/1.0',
        status: this.status,
        bytes_received: this.bodyBytes,
        bytes_sent: this.bytesSent,
        duration_ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
        route: this.route?.name ?? null,
        cluster: this.cluster?.name ?? null,
        upstream: [...this.tried].at(-1)?.address ?? null,
        retries: this.retries,
        error: this.error?.code ?? null,
      });
    }
    if (!this.tunneling) this.owner.streamDone(this, this.closeAfter);
  }
}
