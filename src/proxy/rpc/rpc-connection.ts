/**
 * One downstream RPC connection (Bolt or Dubbo): many calls in flight at once, each routed by its
 * service, sent on a multiplexed upstream connection under a remapped id, and answered in whatever
 * order the upstreams answer. Heartbeats are answered here; failures are answered in the
 * protocol itself, so a client sees an RPC error, not a dropped connection.
 */
import type net from 'node:net';
import { copyOut, FrameBuffer } from '../../codecs/frame-buffer.ts';
import { onBatchedData, onBatchedSharedReads, SocketOutput, type OutputOwner } from '../../stream/socket-output.ts';
import { Deadline, deadlines, type DeadlineOwner } from '../../stream/deadlines.ts';
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { RpcCall, RpcRoute } from '../../router/rpc-router.ts';
import { C, H, L } from '../../shared/stats-table.ts';
import { FrameHeaders, type MuxStream } from '../../stream/mux-pool.ts';
import type { HeaderMap, PoolCallbacks, StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks } from '../../layers.ts';
import type { ShuttleError } from '../../errors.ts';
import type { MuxPoolRegistry, RpcListenerSnapshot, RpcProxyContext } from './context.ts';
import type { RpcFailure, RpcProtocol } from './protocol.ts';
import { ERRORS, type ErrorCode } from '../../errors.ts';
import type { RpcLocalReply, StreamInfo } from '../../filters/api.ts';
import { RESPONSE_FLAG_INDEX, responseFlagsText, type ResponseFlag } from '../../filters/response-flags.ts';
import { RpcFilterRun } from '../../filters/rpc-filter-run.ts';
import type { TlsInfo } from '../../net/tls-server.ts';
import { isTlsSocket, resumeReading, stopReading, whenFlushed, type Migratable, type MigrationDone } from '../../upgrade/migration.ts';
import { approximateNow } from '../../stream/clock.ts';

/** The error code a filter's answer is logged with. */
const FILTER_ERROR: Record<RpcLocalReply['kind'], ErrorCode> = {
  fault: 'SHUTTLE_E_FAULT_INJECTED',
  rate_limited: 'SHUTTLE_E_RATE_LIMITED',
  denied: 'SHUTTLE_E_RBAC_DENIED',
  overflow: 'SHUTTLE_E_CIRCUIT_OPEN',
};

/** The response flag a failure the proxy answered shows. */
const FLAG_OF_FAILURE: Partial<Record<RpcFailure, ResponseFlag>> = { no_host: 'UH', timeout: 'UT', upstream_lost: 'UR', overflow: 'UO' };

/** How long an idle connection is kept during a drain, for a call already on its way. */
const DRAIN_IDLE_GRACE_MS = 1_000;

/** Every downstream RPC connection of a thread reads into this buffer; a read is decoded before the next. */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);

export class RpcConnection<F> implements Migratable, OutputOwner, StreamWriteCallbacks, DeadlineOwner {
  readonly socket: net.Socket;
  readonly id: string;
  readonly protocol: RpcProtocol<F>;
  readonly ctx: RpcProxyContext;
  private readonly onClose: (c: RpcConnection<F>) => void;
  /** Bytes of a frame still arriving. */
  private readonly frames = new FrameBuffer();
  /**
   * Answers written during one event (one upstream read often completes many calls) leave in
   * one write (see stream/socket-output.ts).
   */
  private readonly output: SocketOutput;
  private inFlight = 0;
  private draining = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readingPaused = false;
  /** Our side is ending: calls that still arrive are not taken (there is no one to answer). */
  private ending = false;
  /** The client sent FIN: the connection ends once its calls in flight are answered. */
  private peerEnded = false;
  /** Calls in flight, cancelled if the client goes away. */
  /**
   * Calls in flight, newest first, linked through the calls themselves (abandoned when the client
   * goes): a Set took an entry, a hash and now and then a new table per call.
   */
  private newestRun: RpcCallRun<F> | undefined;
  /** Moving to the new process (an upgrade): reading is stopped, calls in flight finish. */
  private migration: MigrationDone | undefined;
  private cancelFlush: (() => void) | undefined;

  /** The connection's TLS (SNI, the client's identity), when it has one. */
  readonly tls: TlsInfo | undefined;
  /** Reads go into sharedReadBuffer (see start()). */
  private sharedReads = false;
  /**
   * idle_timeout without a socket timer (Node refreshes one on every read and write): reads and
   * writes only bump `activity`; a deadline looks at it four times per idle_timeout (see checkIdle()).
   */
  private activity = 0;
  private quietSince = 0;
  /** The listener's idle_timeout when the connection started (as the socket timer it replaces). */
  private idleMs = 0;
  private readonly idleCheck = new Deadline(this); // (deadlineExpired: checkIdle)

  constructor(socket: net.Socket, id: string, protocol: RpcProtocol<F>, ctx: RpcProxyContext, onClose: (c: RpcConnection<F>) => void, tls?: TlsInfo) {
    this.socket = socket;
    this.tls = tls;
    this.id = id;
    this.protocol = protocol;
    this.ctx = ctx;
    this.onClose = onClose;
    this.output = new SocketOutput(socket, this);
  }

  /** What RPC filters see of a call on this connection. */
  streamInfo(listener: string, route: string | undefined): StreamInfo {
    return {
      listener,
      route,
      protocol: this.protocol.name,
      grpc: false,
      clientIp: (this.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      localPort: this.socket.localPort ?? 0,
      tls: this.tls,
      metadata: new Map(),
    };
  }

  /** `initial`: bytes already read (protocol detection). */
  start(initial?: Buffer): void {
    const s = this.socket;
    const snap = this.ctx.snapshot();
    s.setNoDelay(true);
    // Reads land in the thread's shared buffer (net/socket-io.ts): no Buffer and no stream work
    // per read. What outlives the read is copied: a call's frame that may still be sent (see
    // RpcCallRun.readEnded), a frame cut by the end of the read (FrameBuffer). TLS sockets read
    // through 'data'. Either way, every call of a read goes upstream in one write per upstream
    // connection (the batch), which copies the frames it joins.
    this.sharedReads = onBatchedSharedReads(s, sharedReadBuffer, (chunk) => this.onData(chunk, true));
    if (!this.sharedReads) onBatchedData(s, (chunk) => this.onData(chunk, false));
    s.on('error', noop);
    s.on('end', () => {
      // (allowHalfOpen: the answers to calls already sent still go out.)
      this.peerEnded = true;
      if (this.inFlight === 0) this.end();
    });
    s.once('close', () => {
      this.closed = true;
      this.cancelFlush?.();
      clearTimeout(this.drainTimer);
      this.idleCheck.cancel();
      // Each abandoned call ends, and callEnded() unlinks it.
      for (let run = this.newestRun; run !== undefined; run = this.newestRun) {
        run.abandon();
        if (this.newestRun === run) this.unlink(run); // (already ended: never stop on it)
      }
      snap.telemetry.downstreamClosed(snap.listenerIndex);
      this.onClose(this);
    });
    this.idleMs = snap.listener.idle_timeout;
    this.quietSince = performance.now();
    this.idleCheck.arm(deadlines.queue(idleStep(this.idleMs)));
    snap.telemetry.downstreamOpened(snap.listenerIndex);
    if (initial) this.onData(initial, false);
    s.resume();
  }

  /**
   * A byte either way since the last look restarts the quiet period; a connection quiet for
   * idle_timeout closes (within a quarter of it more, as the L4 relay's timer).
   */
  deadlineExpired(): void {
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.closed) return;
    const idleMs = this.idleMs;
    const now = performance.now();
    if (this.activity !== 0) {
      this.activity = 0;
      this.quietSince = now;
    } else if (now - this.quietSince >= idleMs) {
      this.socket.destroy();
      return;
    }
    this.idleCheck.arm(deadlines.queue(idleStep(idleMs)));
  }

  /** Plain Bolt and Dubbo peers know no goaway: keep serving until idle, then close after a grace. */
  drain(): void {
    this.draining = true;
    this.closeIfIdle();
  }

  abort(): void {
    this.socket.destroy();
  }

  /**
   * Connection migration: reading stops at once (new calls wait in the kernel, for the new
   * process), the calls in flight are answered here, then the connection moves with the bytes
   * of a frame still arriving. Plain Bolt and Dubbo peers never see a thing.
   */
  startMigration(done: MigrationDone): () => void {
    if (this.tls || isTlsSocket(this.socket)) {
      done('tls');
      return noop;
    }
    if (this.peerEnded || this.ending || this.closed || this.draining) {
      done('half_closed');
      return noop;
    }
    this.migration = done;
    stopReading(this.socket);
    // Bytes read but held back (a client that did not read its answers): decoded now, as calls in flight.
    while (this.socket.readableLength > 0 && this.socket.read() !== null);
    this.tryMigrate();
    return () => {
      // This process goes on serving it.
      this.migration = undefined;
      this.cancelFlush?.();
      this.cancelFlush = undefined;
      resumeReading(this.socket, !this.readingPaused && this.upstreamsFull === 0);
    };
  }

  private tryMigrate(): void {
    if (this.migration === undefined || this.cancelFlush !== undefined || this.inFlight > 0) return;
    this.cancelFlush = whenFlushed([this.socket], () => this.output.pending, (ok) => {
      this.cancelFlush = undefined;
      const done = this.migration;
      this.migration = undefined;
      if (!done) return;
      if (!ok || this.closed) return done('closed');
      done({
        sockets: [this.socket],
        state: { kind: this.protocol.name, listener: this.ctx.snapshot().listener.name, unread: this.frames.pending > 0 ? this.frames.copyPending().toString('base64') : undefined },
        commit: () => this.socket.destroy(),
        // (A client that is not reading its answers is read again at its 'drain', as before.)
        rollback: () => resumeReading(this.socket, !this.readingPaused && this.upstreamsFull === 0),
      });
    });
  }

  /**
   * Ends our side. Reading resumes first: a socket paused for a client that did not read gets no
   * 'drain' once ending, and the client's FIN must still be read for the connection to close.
   */
  private end(): void {
    this.ending = true;
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
    this.output.flush();
    this.socket.end();
  }

  private closeIfIdle(): void {
    if (!this.draining || this.inFlight > 0 || this.drainTimer) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      if (this.inFlight === 0) this.end();
    }, DRAIN_IDLE_GRACE_MS);
    this.drainTimer.unref();
  }

  /** `volatile`: `chunk` is the shared read buffer, overwritten by the next read of any socket. */
  private onData(chunk: Buffer, volatile: boolean): void {
    this.activity++;
    if (this.ending) return;
    const snap = this.ctx.snapshot();
    const row = snap.telemetry.row;
    const base = snap.telemetry.layout.listener(snap.listenerIndex);
    row[base + L.downstream_cx_rx_bytes_total] += chunk.length;
    const buf = this.frames.append(chunk, volatile);
    // Frames decoded from the read itself are views of the shared buffer until the read ends
    // (`borrowed`); bytes gathered in the frame buffer's own memory are never written again
    // (frame-buffer.ts).
    const borrowed = volatile && buf === chunk;
    let offset = 0;
    try {
      for (;;) {
        const decoded = this.protocol.decode(buf, offset, snap.listener.rpc!.max_frame_bytes);
        if (!decoded) break;
        offset += decoded.length;
        this.onFrame(decoded.frame, snap, borrowed);
      }
    } catch (err) {
      if (!this.protocol.isProtocolError(err)) {
        // A bug of ours, not the client's: this connection closes, the worker and its others go on.
        this.ctx.logger.error({ conn: this.id, listener: snap.listener.name, err }, 'internal error handling an RPC frame; connection closed');
        this.socket.destroy();
        return;
      }
      // No request id can be trusted in a malformed stream: count it and close this connection only.
      row[base + L.downstream_cx_protocol_error]++;
      this.ctx.logger.info({ conn: this.id, listener: snap.listener.name, protocol: this.protocol.name, error: err.code, reason: err.message }, 'malformed RPC frame; connection closed');
      this.socket.destroy();
      return;
    } finally {
      if (borrowed) this.readEnded();
    }
    this.frames.consumed(offset);
  }

  /** The shared buffer is about to be read into again: the calls of this read settle their bytes. */
  private readEnded(): void {
    // (This read's calls are the newest; those of earlier reads settled already.)
    for (let run = this.newestRun; run !== undefined && run.borrowed; run = run.older) run.readEnded();
  }

  /** Answers are often views of an upstream read buffer that is reused after this event: copied when joined. */
  write(data: Buffer): void {
    if (this.closed) return;
    this.output.push(data, true);
  }

  // ---- OutputOwner --------------------------------------------------------------------------

  onWritten(bytes: number): void {
    this.activity++;
    const snap = this.ctx.snapshot();
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_cx_tx_bytes_total] += bytes;
  }

  // ---- StreamWriteCallbacks: an upstream connection this client sends to is full / drained ------

  /** Upstream connections waiting to drain before this client is read again. */
  private upstreamsFull = 0;

  onAboveWriteHighWatermark(): void {
    if (this.upstreamsFull++ === 0 && !this.closed) this.socket.pause();
  }

  onBelowWriteLowWatermark(): void {
    if (this.upstreamsFull > 0 && --this.upstreamsFull === 0 && !this.readingPaused && !this.closed) this.socket.resume();
  }

  onFull(): void {
    if (this.readingPaused) return;
    // The client is not reading its answers: take no new calls from it until it does.
    this.readingPaused = true;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.readingPaused = false;
      if (this.upstreamsFull === 0) this.socket.resume();
    });
  }

  private onFrame(frame: F, snap: RpcListenerSnapshot, borrowed: boolean): void {
    const kind = this.protocol.kind(frame);
    if (kind === 'ignore') return;
    if (kind === 'heartbeat') return this.write(this.protocol.heartbeatAck(frame));
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_rq_total]++;
    const call = this.protocol.call(frame);
    this.inFlight++;
    const run = new RpcCallRun(this, frame, call, kind === 'oneway', snap, borrowed);
    const newest = this.newestRun;
    if (newest !== undefined) {
      run.older = newest;
      newest.newer = run;
    }
    this.newestRun = run;
    run.start();
  }

  /** A call finished: its reply (if any) goes out, and a draining connection may close. */
  private unlink(run: RpcCallRun<F>): void {
    const { older, newer } = run;
    if (newer !== undefined) newer.older = older;
    else if (this.newestRun === run) this.newestRun = older;
    if (older !== undefined) older.newer = newer;
    run.older = run.newer = undefined;
  }

  callEnded(run: RpcCallRun<F>, reply: Buffer | undefined): void {
    this.unlink(run);
    if (reply) this.write(reply);
    this.inFlight--;
    if (this.peerEnded && this.inFlight === 0 && !this.closed) this.end();
    if (this.migration !== undefined) return this.tryMigrate();
    this.closeIfIdle();
  }
}

/**
 * A caller's timeout rounded up to two significant digits (3050 → 3100 ms): callers choose any
 * value, and each distinct duration is a deadline queue, so this bounds the queues to a few
 * hundred whatever clients send, at the price of an expiry at most 10% late.
 */
function twoSignificantDigits(ms: number): number {
  if (ms < 100) return Math.ceil(ms);
  const step = 10 ** (Math.floor(Math.log10(ms)) - 1);
  return Math.ceil(ms / step) * step;
}

/**
 * One RPC call through the proxy. Each try asks the host's pool for a stream (Pool.newStream, as
 * the HTTP proxy does) and sends the call's frame as its headers; the answer comes back as the
 * stream's headers (FrameHeaders of the response frame).
 */
class RpcCallRun<F> implements StreamDecoder, PoolCallbacks, DeadlineOwner {
  private readonly conn: RpcConnection<F>;
  private readonly frame: F;
  private readonly call: RpcCall;
  private readonly clientId: unknown;
  private readonly oneway: boolean;
  private readonly snap: RpcListenerSnapshot;
  private readonly route: RpcRoute | undefined;
  /** Hosts tried, made at the first retry (most calls make one try: no Set per call). */
  private tried: Set<Host> | undefined;
  private attempts = 0;
  private readonly startedAt = approximateNow();
  /** The current try: its host, and the upstream stream it was sent on. */
  private host: Host | undefined;
  private cluster: Cluster | undefined;
  private upstream: StreamEncoder | undefined;
  /** The call's frame as a stream's headers (made once, sent again by a retry). */
  private requestHeaders: FrameHeaders<F> | undefined;
  /** The frame's bytes are a view of the connection's read buffer, valid until the read ends. */
  borrowed: boolean;
  private timer: Deadline | undefined;
  /** Neighbours in the connection's list of calls in flight. */
  older: RpcCallRun<F> | undefined;
  newer: RpcCallRun<F> | undefined;
  private done = false;
  private retries = 0;
  private filters: RpcFilterRun | undefined;
  /** The cluster whose max_requests breaker this call holds a slot of. */
  private heldOn: Cluster | undefined;
  /** Envoy's response flags seen (bits, see filters/response-flags.ts). */
  private flags = 0;
  /** The cluster the call was routed to (stable id; -1: none), and when its last try started. */
  private clusterIndex = -1;
  private tryStartedAt = 0;

  constructor(conn: RpcConnection<F>, frame: F, call: RpcCall, oneway: boolean, snap: RpcListenerSnapshot, borrowed: boolean) {
    this.conn = conn;
    this.frame = frame;
    this.borrowed = borrowed;
    this.call = call;
    this.clientId = conn.protocol.clientId(frame);
    this.oneway = oneway;
    this.snap = snap;
    this.route = snap.router.route(call);
    snap.telemetry.streams(1);
  }

  start(): void {
    const built = this.snap.filters?.forRoute(this.route?.config);
    if (built !== undefined && built.length > 0) {
      const info = this.conn.streamInfo(this.snap.listener.name, this.route?.name);
      this.filters = new RpcFilterRun(built, { call: this.call, info }, {
        proceed: () => this.routed(),
        reply: (r) => {
          this.flags |= 1 << RESPONSE_FLAG_INDEX[r.flag];
          this.fail(r.kind, FILTER_ERROR[r.kind], null, r.message);
        },
      }, this.conn.ctx.logger);
      return this.filters.start();
    }
    this.routed();
  }

  /** Past the filters (or none): route the call upstream. */
  private routed(): void {
    if (this.done) return;
    if (!this.route) {
      this.flags |= 1 << RESPONSE_FLAG_INDEX.NR;
      return this.fail('no_route', 'SHUTTLE_E_NO_ROUTE', null);
    }
    const name = this.route.cluster();
    const cluster = name ? this.snap.clusters.get(name) : undefined;
    if (!cluster) return this.fail('no_route', 'SHUTTLE_E_NO_CLUSTER', null);
    this.clusterIndex = cluster.index;
    const held = cluster.breakers.acquire(this.route.config.priority, 'requests');
    if (held === 'refused') {
      const t = this.snap.telemetry;
      t.row[t.layout.cluster(cluster.index) + C.upstream_rq_pending_overflow]++;
      return this.fail('overflow', 'SHUTTLE_E_CIRCUIT_OPEN', null, `cluster ${cluster.name}: max_requests reached`);
    }
    if (held === 'counted') this.heldOn = cluster;
    const timeout = this.route.timeout > 0 ? this.route.timeout : this.conn.protocol.timeoutOf(this.frame, this.call);
    if (timeout > 0 && !this.oneway) {
      this.timer = new Deadline(this); // (deadlineExpired: the call's timeout)
      this.timer.arm(deadlines.queue(twoSignificantDigits(timeout)));
    }
    this.attempt(cluster);
  }

  /**
   * The read that carried the call is over, and the next one overwrites its bytes. Copied only if
   * the call may still send them: not sent yet (a filter waits, say), sent on a connection still
   * connecting (a connect failure sends it elsewhere), or a retry left. Why: most calls left in
   * that read's joined write, which copied them already; a copy of every call's frame was ~20% of
   * the bytes allocated per call. Otherwise the frame drops its view: nothing reads another
   * client's bytes through it later.
   */
  readEnded(): void {
    this.borrowed = false;
    if (this.done) return;
    const protocol = this.conn.protocol;
    const raw = protocol.raw(this.frame);
    const sent = this.upstream as MuxStream<F> | undefined; // (RPC pools are MuxPools)
    if (sent === undefined || !sent.sentOnConnected || this.retries < (this.route?.retries ?? 0)) {
      protocol.setRaw(this.frame, copyOut(raw));
      if (this.requestHeaders !== undefined) this.requestHeaders.volatile = false;
    } else protocol.setRaw(this.frame, NO_BYTES);
  }

  /** The call's timeout passed (the call owns its deadline: no closure per call). */
  deadlineExpired(): void {
    this.fail('timeout', 'SHUTTLE_E_UPSTREAM_TIMEOUT', null);
  }

  private attempt(cluster: Cluster): void {
    if (this.host !== undefined) (this.tried ??= new Set()).add(this.host);
    const host = cluster.lb.choose(this.tried);
    if (!host) return this.fail('no_host', 'SHUTTLE_E_NO_HEALTHY_HOST', null);
    this.attempts++;
    this.tryStartedAt = approximateNow();
    const { telemetry, listener } = this.snap;
    // The registry of this connection's protocol: its frames are F.
    const pools = this.conn.ctx.pools[this.conn.protocol.name] as unknown as MuxPoolRegistry<F>;
    telemetry.row[telemetry.layout.host(host.index) + H.upstream_rq_total]++;
    this.host = host;
    this.cluster = cluster;
    // The call itself hears the pool and the answer (PoolCallbacks, StreamDecoder): no closure per call.
    pools.get(host, cluster, listener.rpc!, telemetry).newStream(this, this, 0);
  }

  // ---- PoolCallbacks: the try's upstream stream -------------------------------------------------

  onPoolReady(encoder: StreamEncoder): void {
    this.upstream = encoder;
    // A full upstream connection stops reading this client (backpressure).
    encoder.setWriteCallbacks(this.conn);
    encoder.encodeHeaders((this.requestHeaders ??= new FrameHeaders(this.frame, this.oneway, this.borrowed)), true);
    if (this.oneway) {
      this.upstream = undefined;
      this.finish(0, null, this.host!, undefined);
    }
  }

  onPoolFailure(error: ShuttleError): void {
    this.onReset('connection-failure', error);
  }

  // ---- StreamDecoder: the upstream's answer to the current try ---------------------------------

  decodeHeaders(headers: HeaderMap): void {
    this.upstream = undefined;
    const resp = (headers as FrameHeaders<F>).frame;
    this.finish(this.conn.protocol.statusOf(resp), null, this.host ?? null, this.conn.protocol.restoreId(resp, this.clientId));
  }

  /** An answer is one frame: no 1xx, body or trailers of its own. */
  decodeInformational(): void {}
  decodeData(): void {}
  decodeTrailers(): void {}

  onReset(reason: StreamResetReason, _error?: ShuttleError): void {
    this.upstream = undefined;
    const host = this.host!;
    const telemetry = this.snap.telemetry;
    telemetry.row[telemetry.layout.host(host.index) + H.upstream_rq_error]++;
    // Not sent (connect failed): another host may take it. Sent and lost: only an idempotent
    // route retries; otherwise the caller decides.
    if (this.done) return;
    if (reason === 'connection-failure') return this.attempt(this.cluster!);
    if (this.retries < (this.route?.retries ?? 0)) {
      this.retries++;
      return this.attempt(this.cluster!);
    }
    this.fail('upstream_lost', 'SHUTTLE_E_UPSTREAM_RESET', host);
  }

  /** Forgets the request upstream (timed out, client gone): a late answer is dropped. */
  private cancelUpstream(): void {
    const upstream = this.upstream;
    this.upstream = undefined;
    upstream?.reset('local');
  }

  private fail(failure: RpcFailure, code: string, host: Host | null, message = code): void {
    if (this.done) return;
    this.cancelUpstream();
    const flag = FLAG_OF_FAILURE[failure];
    if (flag !== undefined) this.flags |= 1 << RESPONSE_FLAG_INDEX[flag];
    let reply: Buffer | undefined;
    if (!this.oneway) {
      try {
        reply = this.conn.protocol.errorReply(this.frame, this.clientId, failure, message);
      } catch (err) {
        // No reply can be made for this frame: the client loses this connection, not the worker.
        this.conn.ctx.logger.error({ conn: this.conn.id, err }, 'could not encode an RPC error reply; connection closed');
        this.conn.socket.destroy();
      }
    }
    this.finish(-1, code, host, reply);
  }

  /** The client went away: forget the upstream request, answer nobody. */
  abandon(): void {
    if (this.done) return;
    this.cancelUpstream();
    this.finish(-1, 'SHUTTLE_E_DOWNSTREAM_RESET', null, undefined);
  }

  /**
   * Counted as an HTTP request would be, with the status an HTTP client would get: 200 for a
   * successful response (or a oneway call sent), 500 for an error response, a local reply's status.
   */
  private recordOutcome(status: number, error: string | null, host: Host | null): void {
    const now = approximateNow();
    const answered = error === null && host !== null && !this.oneway;
    const httpStatus = error !== null ? (ERRORS[error as ErrorCode]?.http ?? 500) : this.oneway || status === this.conn.protocol.okStatus ? 200 : 500;
    this.snap.telemetry.recordRequest(this.snap.listenerIndex, this.route?.config, this.clusterIndex, httpStatus, now - this.startedAt, answered ? now - this.tryStartedAt : -1, this.retries, error ?? undefined);
  }

  private finish(status: number, error: string | null, host: Host | null, reply: Buffer | undefined): void {
    if (this.done) return;
    this.done = true;
    this.snap.telemetry.streams(-1);
    this.timer?.cancel();
    this.filters?.destroy();
    if (this.heldOn !== undefined) this.heldOn.breakers.release(this.route!.config.priority, 'requests');
    if (this.flags !== 0) this.snap.telemetry.responseFlags(this.snap.listenerIndex, this.flags);
    this.recordOutcome(status, error, host);
    const { listener } = this.snap;
    if (listener.access_log) {
      this.conn.ctx.logger.info({
        msg: 'access', conn: this.conn.id, listener: listener.name, protocol: this.conn.protocol.name, service: this.call.service, method: this.call.method ?? null,
        request_id: String(this.clientId), oneway: this.oneway, status: status < 0 ? null : status, upstream: host?.address ?? null, attempts: this.attempts, retries: this.retries,
        duration_ms: Math.round((approximateNow() - this.startedAt) * 1000) / 1000, error,
        response_flags: this.flags === 0 ? '-' : responseFlagsText(this.flags),
        tls: this.conn.tls ? { sni: this.conn.tls.sni ?? null, version: this.conn.tls.version, peer: this.conn.tls.peer?.identity ?? null } : undefined,
      });
    }
    this.conn.callEnded(this, this.oneway ? undefined : reply);
  }
}

function noop(): void {}

/** What a sent frame's bytes become once its read is over (see RpcCallRun.readEnded). */
const NO_BYTES = Buffer.alloc(0);

/** How often a connection's idle check looks: four times per idle_timeout. */
function idleStep(idleMs: number): number {
  return Math.max(1, Math.ceil(idleMs / 4));
}
