/**
 * One request through the proxy, whatever the protocol on either side (Envoy's ActiveStream and
 * router filter): it decodes the downstream request, routes it, asks the cluster's pool for an
 * upstream stream, and relays headers, data and trailers both ways with per-stream backpressure.
 *
 * ```mermaid
 * flowchart LR
 *   head[request headers] --> route{route?}
 *   route -- none --> r404[404 / UNIMPLEMENTED]
 *   route -- direct / redirect --> local[local reply]
 *   route -- cluster --> pick[pick host: lb, skip tried]
 *   pick -- none --> r503[503 / UNAVAILABLE]
 *   pick --> pool[pool.newStream]
 *   pool -- connect failure --> retry{retry?}
 *   pool --> send[headers + body upstream]
 *   send --> resp[response headers]
 *   resp -- retriable status, nothing sent yet --> retry
 *   send -- reset before response --> retry
 *   retry -- yes --> pick
 *   retry -- no --> err[502 / 503 / 504, or gRPC status]
 *   resp --> stream[data, trailers downstream] --> done[access log]
 * ```
 *
 * Each try is an UpstreamAttempt: callbacks of a try given up on (a retried 503 still arriving, a
 * timed-out stream) reach nothing.
 */
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import { requestHash } from './hash-policy.ts';
import { ERRORS, GrpcStatus, ShuttleError } from '../../errors.ts';
import type { CancelPoolRequest, PoolCallbacks, StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks, UpstreamInfo } from '../../layers.ts';
import type { Route } from '../../router/router.ts';
import { C, H, L } from '../../shared/stats-table.ts';
import { Deadline, deadlines, type DeadlineOwner } from '../../stream/deadlines.ts';
import { HeaderMap } from '../../stream/header-map.ts';
import type { HttpListenerSnapshot, HttpProxyContext } from './context.ts';
import { encodeGrpcMessage, formatGrpcTimeout, GRPC_RETRY_ON, grpcStatusOf, isGrpc, parseGrpcTimeout } from './grpc.ts';
import type { TlsInfo } from '../../net/tls-server.ts';
import { forwardClientCert, prepareDownstreamResponse, prepareUpstreamRequest } from './headers.ts';
import { ShadowRequest } from './shadow.ts';
import { sendLocalReply, type LocalReply } from './local-reply.ts';
import type { FilterLocalReply, StreamInfo } from '../../filters/api.ts';
import { HttpFilterManager, type FilterHost } from '../../filters/http-filter-manager.ts';
import { RESPONSE_FLAG_INDEX, responseFlagsText, type ResponseFlag } from '../../filters/response-flags.ts';
import { approximateNow } from '../../stream/clock.ts';

const HELD_REQUEST = 1;
const HELD_RETRY = 2;

/** The response flag a failure the proxy answered shows (Envoy's vocabulary). */
const FLAG_OF_ERROR: Partial<Record<string, ResponseFlag>> = {
  SHUTTLE_E_NO_HEALTHY_HOST: 'UH',
  SHUTTLE_E_UPSTREAM_CONNECT_FAILED: 'UF',
  SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT: 'UF',
  SHUTTLE_E_UPSTREAM_TIMEOUT: 'UT',
  SHUTTLE_E_UPSTREAM_RESET: 'UR',
  SHUTTLE_E_UPSTREAM_OVERFLOW: 'UO',
  SHUTTLE_E_CIRCUIT_OPEN: 'UO',
  SHUTTLE_E_DOWNSTREAM_RESET: 'DC',
};

/** What filters left for the access log: the request id, the trace id, the JWT's subject. */
function metadataFields(meta: Map<string, unknown>): Record<string, unknown> | undefined {
  if (meta.size === 0) return undefined;
  const out: Record<string, unknown> = {};
  const id = meta.get('request_id');
  if (id !== undefined) out.request_id = id;
  const trace = meta.get('trace_id');
  if (trace !== undefined) out.trace_id = trace;
  const jwt = meta.get('jwt_payload') as { sub?: unknown } | undefined;
  if (jwt !== undefined && typeof jwt.sub === 'string') out.jwt_sub = jwt.sub;
  return out;
}

/** 1xx responses accepted before the final one (a flood of them is a broken or hostile upstream). */
const MAX_INTERIM_RESPONSES = 8;

/** Silent retries of a stream the upstream never processed (refused, past a GOAWAY). */
const MAX_UNPROCESSED_RETRIES = 3;

/** The shared empty list of lazily made body lists (never pushed to). */
const EMPTY_LIST: Buffer[] = [];

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

type FailureKind = 'connect-failure' | 'reset' | 'refused' | 'status';

/** What a stream knows of its downstream connection. */
export interface DownstreamConnection {
  readonly id: string;
  readonly clientIp: string;
  /** The listener port the client connected to. */
  readonly localPort: number;
  /** The connection's TLS, when it has one (its SNI, ALPN and client identity). */
  readonly tls: TlsInfo | undefined;
}

/** What routing sees of a request: header() reads the map only when a route asks. */
class RouteRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly peerIdentity: string | undefined;
  private readonly headers: HeaderMap;

  constructor(h: HeaderMap, peerIdentity: string | undefined) {
    this.headers = h;
    this.peerIdentity = peerIdentity;
    this.method = h.method;
    const q = h.path.indexOf('?');
    this.path = q < 0 ? h.path : h.path.slice(0, q);
    this.query = q < 0 ? '' : h.path.slice(q + 1);
  }

  header(name: string): string | undefined {
    return this.headers.get(name);
  }
}

/** One try of a request on one upstream host. */
class UpstreamAttempt implements StreamDecoder, PoolCallbacks, StreamWriteCallbacks {
  readonly stream: ProxyStream;
  readonly host: Host;
  encoder: StreamEncoder | undefined;
  cancelWait: CancelPoolRequest | undefined;
  reused = false;
  /** Response data of this try is a view of a reused read buffer (an HTTP/1 upstream). */
  volatileData = false;
  responseBytesSeen = false;
  interimResponses = 0;
  /** This try's request is over the upstream's high watermark: the downstream is read-disabled for it. */
  upstreamFull = false;
  gone = false;
  /** The pending-requests breaker slot this try holds while it waits for a connection. */
  pendingOn: { breakers: Cluster['breakers']; priority: 'default' | 'high' } | undefined;

  private releasePending(): void {
    const p = this.pendingOn;
    if (p === undefined) return;
    this.pendingOn = undefined;
    p.breakers.release(p.priority, 'pending_requests');
  }

  constructor(stream: ProxyStream, host: Host) {
    this.stream = stream;
    this.host = host;
  }

  onPoolReady(encoder: StreamEncoder, info: UpstreamInfo): void {
    this.cancelWait = undefined;
    this.releasePending();
    if (this.gone) return encoder.reset('local');
    this.encoder = encoder;
    this.reused = info.reused;
    this.volatileData = info.protocol === 'HTTP/1.1';
    encoder.setWriteCallbacks(this);
    this.stream.upstreamReady(this);
  }

  onPoolFailure(error: ShuttleError): void {
    this.cancelWait = undefined;
    this.releasePending();
    if (!this.gone) this.stream.attemptFailed(this, error, error.code === 'SHUTTLE_E_UPSTREAM_OVERFLOW' ? 'status' : 'connect-failure');
  }

  decodeInformational(h: HeaderMap): void {
    if (!this.gone) this.stream.upstreamInformational(this, h);
  }

  decodeHeaders(h: HeaderMap, endStream: boolean): void {
    this.responseBytesSeen = true;
    if (!this.gone) this.stream.upstreamHeaders(this, h, endStream);
  }

  decodeData(data: Buffer, endStream: boolean): void {
    if (!this.gone) this.stream.upstreamData(data, endStream, this.volatileData);
  }

  decodeTrailers(t: HeaderMap): void {
    if (!this.gone) this.stream.upstreamTrailers(t);
  }

  onReset(reason: StreamResetReason, error?: ShuttleError): void {
    if (this.gone) return;
    const kind: FailureKind = reason === 'connection-failure' ? 'connect-failure' : reason === 'refused' ? 'refused' : 'reset';
    this.stream.attemptFailed(this, error ?? new ShuttleError(reason === 'refused' ? 'SHUTTLE_E_UPSTREAM_REFUSED_STREAM' : 'SHUTTLE_E_UPSTREAM_RESET', 'upstream', `upstream stream ${reason}`), kind);
  }

  onAboveWriteHighWatermark(): void {
    if (this.gone || this.upstreamFull) return;
    this.upstreamFull = true;
    this.stream.downstream.readDisable(true);
  }

  onBelowWriteLowWatermark(): void {
    if (!this.upstreamFull) return;
    this.upstreamFull = false;
    this.stream.downstream.readDisable(false);
  }

  /** Gives the try up: a wait is cancelled, a stream reset (its connection is not reused). */
  abandon(): void {
    if (this.gone) return;
    this.gone = true;
    this.cancelWait?.();
    this.cancelWait = undefined;
    this.releasePending();
    if (this.upstreamFull) this.onBelowWriteLowWatermark();
    this.encoder?.reset('local');
  }

  /** The response is complete: nothing to reset, the codec keeps or closes the connection. */
  completed(): void {
    this.gone = true;
    if (this.upstreamFull) this.onBelowWriteLowWatermark();
  }
}

export class ProxyStream implements StreamDecoder, StreamWriteCallbacks, FilterHost, DeadlineOwner {
  readonly downstream: StreamEncoder;
  /** Where the response goes: the downstream encoder, or the filter chain in front of it. */
  private out: StreamEncoder;
  private filters: HttpFilterManager | undefined;
  /** Envoy's response flags seen (a bit per flag, see filters/response-flags.ts). */
  private flags = 0;
  /** Circuit-breaker slots this request holds (HELD_* bits). */
  private breakerHeld = 0;
  /** Mirrored copies of this request (request_mirror_policies). */
  private shadows: ShadowRequest[] | undefined;
  /** The client's stream is gone (reset, connection lost): nothing more can be sent. */
  private downstreamGone = false;
  private readonly conn: DownstreamConnection;
  private readonly ctx: HttpProxyContext;
  /** The config generation this request started under: it finishes under it too. */
  private readonly snap: HttpListenerSnapshot;
  private readonly startedAt: number;
  private request: HeaderMap | undefined;
  /** null: not computed yet (see hash()). */
  private hashValue: number | undefined | null = null;
  /** As the client sent them (before rewrites), for the access log. */
  private path = '';
  private authority = '';
  private bytesReceived = 0;
  private route: Route | undefined;
  private cluster: Cluster | undefined;
  private grpc = false;
  private headRequest = false;

  private attempt: UpstreamAttempt | undefined;
  /** Hosts tried so far (made at the first retry: most requests have one try). */
  private tried: Set<Host> | undefined;
  private lastHost: Host | undefined;
  /** When the last try started, and how long its upstream took to answer in full (-1: it did not). */
  private tryStartedAt = 0;
  private upstreamMs = -1;
  private retries = 0;
  private staleRetried = false;
  private unprocessedRetries = 0;
  private holdingRetryToken = false;

  /** Request body kept for a retry while it fits the retry buffer (server codecs never reuse these buffers). */
  private body: Buffer[] = EMPTY_LIST;
  private bodyBytes = 0;
  private bodyReplayable = true;
  /** Body received while no upstream stream takes it (too much to keep for a replay). */
  private pending: Buffer[] = EMPTY_LIST;
  private pendingPaused = false;
  private requestEnded = false;
  private trailersKept: HeaderMap | undefined;
  /** A filter changed the headers routing reads: look the route up again. */
  private routeStale = false;

  private responseStarted = false;
  /** gRPC response headers waiting for a first message (see upstreamHeaders). */
  private heldHeaders: HeaderMap | undefined;
  private tunneling = false;
  private status = 0;
  private grpcStatus = -1;
  private error: ShuttleError | undefined;
  private finished = false;
  /** The downstream is over its high watermark: the upstream stream is read-disabled. */
  private downstreamFull = false;
  /** gRPC: when the call must be answered by (route timeout or grpc-timeout), performance.now() ms. */
  private deadlineAt = 0;
  private timeout: Deadline | undefined;
  /** The route timeout `timeout` was armed with (ms). */
  private timeoutMs = 0;
  private tryTimeout: Deadline | undefined;
  private idleTimer: Deadline | undefined;

  constructor(downstream: StreamEncoder, conn: DownstreamConnection, ctx: HttpProxyContext) {
    this.downstream = downstream;
    this.out = downstream;
    this.conn = conn;
    this.ctx = ctx;
    this.snap = ctx.snapshot();
    this.startedAt = approximateNow();
    this.snap.telemetry.streams(1);
    downstream.setWriteCallbacks(this);
  }

  /** One of this stream's deadlines passed (the stream is their owner: no closure per request). */
  deadlineExpired(d: Deadline): void {
    if (d === this.timeout) {
      this.timedOut(new ShuttleError('SHUTTLE_E_UPSTREAM_TIMEOUT', 'upstream', `no complete response within ${this.timeoutMs}ms`));
    } else if (d === this.tryTimeout) {
      const a = this.attempt;
      if (a !== undefined) this.attemptFailed(a, new ShuttleError('SHUTTLE_E_UPSTREAM_TIMEOUT', 'upstream', `per-try timeout ${this.route?.retry?.per_try_timeout ?? 0}ms`), 'reset');
    } else if (d === this.idleTimer) {
      this.onStreamIdle();
    }
  }

  /**
   * stream_idle_timeout, armed only where it can fire first: a route timeout no longer than it
   * ends the request (body stall included) before it would.
   */
  private armIdleTimer(routeTimeoutMs: number): void {
    const idleMs = this.snap.listener.http.stream_idle_timeout;
    if (idleMs === 0 || (routeTimeoutMs > 0 && routeTimeoutMs <= idleMs)) return;
    this.idleTimer = new Deadline(this);
    this.idleTimer.arm(deadlines.queue(idleMs));
  }

  // ---- the downstream request ---------------------------------------------------------------

  decodeInformational(): void {}

  decodeHeaders(h: HeaderMap, endStream: boolean): void {
    this.request = h;
    this.requestEnded = endStream;
    this.headRequest = h.method === 'HEAD';
    this.grpc = isGrpc(h);
    const telemetry = this.snap.telemetry;
    telemetry.row[telemetry.layout.listener(this.snap.listenerIndex) + L.downstream_rq_total]++;
    if (h.method === 'CONNECT') {
      return this.reply({ status: 405, body: 'CONNECT is not allowed here\n', code: 'SHUTTLE_E_HTTP_METHOD_NOT_ALLOWED', headers: [['allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE']] });
    }
    const view = new RouteRequest(h, this.conn.tls?.peer?.identity);
    this.path = view.path;
    this.authority = h.authority;
    this.route = this.snap.router.route(h.authority, view);
    const chain = this.snap.filters;
    if (chain === undefined) return this.routeRequest(h, endStream);
    const filters = new HttpFilterManager(this, this.downstream, chain, this.route?.config, this.streamInfo(), this.ctx.logger);
    this.filters = filters;
    this.out = filters;
    filters.decodeHeaders(h, endStream);
  }

  private findRoute(h: HeaderMap): Route | undefined {
    return this.snap.router.route(h.authority, new RouteRequest(h, this.conn.tls?.peer?.identity));
  }

  /** What filters see of this stream (made only when the listener has filters). */
  private streamInfo(): StreamInfo {
    const stream = this;
    return {
      listener: this.snap.listener.name,
      get route() {
        return stream.route?.name;
      },
      protocol: this.downstream.protocol,
      grpc: this.grpc,
      clientIp: this.conn.clientIp,
      localPort: this.conn.localPort,
      tls: this.conn.tls,
      metadata: new Map(),
    };
  }

  // ---- FilterHost: what the filter chain calls --------------------------------------------------

  get ended(): boolean {
    return this.finished;
  }

  clearRouteCache(): void {
    this.routeStale = true;
  }

  setResponseFlag(flag: ResponseFlag): void {
    this.flags |= 1 << RESPONSE_FLAG_INDEX[flag];
  }

  filterReply(r: FilterLocalReply): void {
    if (r.code !== undefined) this.error = new ShuttleError(r.code, ERRORS[r.code].source, r.body);
    this.reply({ status: r.status, body: r.body ?? '', headers: r.headers, grpcStatus: r.grpcStatus, code: r.code });
  }

  /** The request passed the filters (or there are none): route it upstream, or answer it. */
  routeRequest(h: HeaderMap, endStream: boolean): void {
    if (this.routeStale) {
      this.routeStale = false;
      this.route = this.findRoute(h);
    }
    const route = this.route;
    if (!route) {
      this.setResponseFlag('NR');
      return this.fail(new ShuttleError('SHUTTLE_E_NO_ROUTE', 'downstream', `no route for ${h.authority}${h.path}`));
    }
    const cfg = route.config;
    if (cfg.direct_response) return this.reply({ status: cfg.direct_response.status, body: cfg.direct_response.body });
    if (cfg.redirect) return this.redirect(cfg.redirect);
    const clusterName = route.cluster();
    const cluster = clusterName ? this.snap.clusters.get(clusterName) : undefined;
    if (!cluster) return this.fail(new ShuttleError('SHUTTLE_E_NO_CLUSTER', 'internal', `cluster ${clusterName} not found`));
    this.cluster = cluster;
    this.ctx.retryBudget.requestStarted(cluster);
    const held = cluster.breakers.acquire(route.config.priority, 'requests');
    if (held === 'refused') return this.overflow(cluster, 'requests');
    this.breakerHeld |= held === 'counted' ? HELD_REQUEST : 0;
    // Expect: 100-continue is answered here (Envoy's default) and not forwarded: the client sends
    // its body now, whether or not the upstream would ever have said 100.
    if (!endStream && h.has('expect')) {
      const expect = h.get('expect');
      if (expect !== undefined && expect.toLowerCase() === '100-continue') {
        h.remove('expect');
        this.downstream.encodeInformational(HeaderMap.response(100));
      }
    }
    prepareUpstreamRequest(h, route, this.conn.clientIp);
    forwardClientCert(h, this.snap.listener.tls?.forward_client_cert, this.conn.tls?.peer);
    if (cfg.request_mirror_policies.length > 0) this.mirror(h, endStream, cfg.request_mirror_policies, route.timeout);
    let timeoutMs = route.timeout;
    if (this.grpc) {
      const grpcMs = parseGrpcTimeout(h.get('grpc-timeout'));
      if (grpcMs !== undefined && (timeoutMs === 0 || grpcMs < timeoutMs)) timeoutMs = Math.max(1, Math.ceil(grpcMs));
    }
    this.armIdleTimer(timeoutMs);
    if (timeoutMs > 0) {
      if (this.grpc) this.deadlineAt = approximateNow() + timeoutMs;
      this.timeoutMs = timeoutMs;
      this.timeout = new Deadline(this);
      this.timeout.arm(deadlines.queue(timeoutMs));
    }
    this.startAttempt();
  }

  decodeData(data: Buffer, endStream: boolean): void {
    if (this.finished) return;
    if (this.filters !== undefined) return this.filters.decodeData(data, endStream);
    this.requestData(data, endStream);
  }

  /** Request body past the filters: to the upstream, or kept until a connection takes it. */
  requestData(data: Buffer, endStream: boolean): void {
    if (this.finished) return;
    if (this.shadows !== undefined) for (const sh of this.shadows) sh.data(data, endStream);
    this.active();
    if (endStream) this.requestEnded = true;
    this.bytesReceived += data.length;
    if (this.tunneling) {
      this.attempt?.encoder?.encodeData(data, endStream);
      return;
    }
    if (this.bodyReplayable && data.length > 0) {
      this.bodyBytes += data.length;
      if (this.bodyBytes <= this.snap.listener.http.retry_buffer_bytes) {
        if (this.body === EMPTY_LIST) this.body = [];
        this.body.push(data);
        if (this.attempt?.encoder === undefined) return; // sent with the head once connected
      } else {
        this.bodyReplayable = false;
        // Not sent yet: what was kept still has to go; once sent, it is no longer needed.
        if (this.attempt?.encoder === undefined) this.pending = this.pending.concat(this.body);
        this.body = EMPTY_LIST;
      }
    }
    const encoder = this.attempt?.encoder;
    if (encoder !== undefined) {
      encoder.encodeData(data, endStream);
    } else if (!this.bodyReplayable) {
      // Not connected yet and too much to keep: stop reading until a connection takes it.
      if (data.length > 0) {
        if (this.pending === EMPTY_LIST) this.pending = [];
        this.pending.push(data);
      }
      if (!this.pendingPaused && !endStream) {
        this.pendingPaused = true;
        this.downstream.readDisable(true);
      }
    }
  }

  decodeTrailers(trailers: HeaderMap): void {
    if (this.finished) return;
    if (this.filters !== undefined) return this.filters.decodeTrailers(trailers);
    this.requestTrailers(trailers);
  }

  requestTrailers(trailers: HeaderMap): void {
    if (this.finished) return;
    if (this.shadows !== undefined) for (const sh of this.shadows) sh.requestTrailers(trailers);
    this.requestEnded = true;
    this.trailersKept = trailers;
    this.attempt?.encoder?.encodeTrailers(trailers);
  }

  /** The downstream stream is gone (client reset, connection lost, malformed input). */
  onReset(_reason: StreamResetReason, error?: ShuttleError): void {
    if (this.finished) return;
    this.error ??= error ?? new ShuttleError('SHUTTLE_E_DOWNSTREAM_RESET', 'downstream');
    this.downstreamGone = true;
    this.attempt?.abandon();
    this.attempt = undefined;
    this.finish();
  }

  // ---- downstream backpressure ---------------------------------------------------------------

  onAboveWriteHighWatermark(): void {
    if (this.downstreamFull) return;
    this.downstreamFull = true;
    this.attempt?.encoder?.readDisable(true);
  }

  onBelowWriteLowWatermark(): void {
    if (!this.downstreamFull) return;
    this.downstreamFull = false;
    this.attempt?.encoder?.readDisable(false);
  }

  // ---- upstream tries -----------------------------------------------------------------------

  /** The request's hash for a consistent-hash cluster (its route's hash_policy), once per request. */
  private hash(): number | undefined {
    if (this.hashValue === null) {
      const policies = this.route!.config.hash_policy;
      this.hashValue = policies ? requestHash(policies, this.request!, this.conn.clientIp) : undefined;
    }
    return this.hashValue;
  }

  /** `again`: a host that may be chosen again (its request was never processed there). */
  private startAttempt(again?: Host): void {
    const cluster = this.cluster!;
    if (again !== undefined) this.tried?.delete(again);
    if (this.lastHost !== undefined && this.tried === undefined && again === undefined) this.tried = new Set([this.lastHost]);
    // Hosts not tried yet first; when every host was tried, a retry may go to one again.
    const hash = cluster.lb.needsHash ? this.hash() : undefined;
    const host = cluster.lb.choose(this.tried, hash) ?? (this.tried !== undefined && this.retries > 0 ? cluster.lb.choose(undefined, hash) : undefined);
    if (!host) {
      this.fail(this.error ?? new ShuttleError('SHUTTLE_E_NO_HEALTHY_HOST', 'internal', `cluster ${cluster.name} has no healthy host`));
      if (this.lastHost === undefined) this.snap.telemetry.noHealthyHost(cluster.index);
      return;
    }
    this.tried?.add(host);
    this.lastHost = host;
    this.tryStartedAt = approximateNow();
    const attempt = new UpstreamAttempt(this, host);
    this.attempt = attempt;
    const pool = this.ctx.pools.get(host, cluster, this.snap.telemetry);
    const cancel = pool.newStream(attempt, attempt, this.route!.timeout);
    // (A pool may have answered synchronously: an idle connection, or an overflow.)
    if (this.attempt === attempt && attempt.encoder === undefined && !attempt.gone) {
      attempt.cancelWait = cancel;
      // Waiting for a connection: a pending request, for the breaker.
      const pending = cluster.breakers.acquire(this.route!.config.priority, 'pending_requests');
      if (pending === 'refused') {
        attempt.abandon();
        this.attempt = undefined;
        return this.overflow(cluster, 'pending_requests');
      }
      if (pending === 'counted') attempt.pendingOn = { breakers: cluster.breakers, priority: this.route!.config.priority };
    }
  }

  upstreamReady(attempt: UpstreamAttempt): void {
    if (this.attempt !== attempt || this.finished) return attempt.abandon();
    const encoder = attempt.encoder!;
    const telemetry = this.snap.telemetry;
    telemetry.row[telemetry.layout.host(attempt.host.index) + H.upstream_rq_total]++;
    const request = this.request!;
    if (this.grpc && this.deadlineAt > 0) request.set('grpc-timeout', formatGrpcTimeout(this.deadlineAt - approximateNow()));
    // What is kept for a replay, then what waited without being kept.
    const pieces = this.pending.length === 0 ? this.body : this.body.length === 0 ? this.pending : this.body.concat(this.pending);
    this.pending = EMPTY_LIST;
    const trailers = this.trailersKept;
    const ended = this.requestEnded;
    encoder.encodeHeaders(request, ended && pieces.length === 0 && trailers === undefined);
    for (let i = 0; i < pieces.length; i++) encoder.encodeData(pieces[i], ended && trailers === undefined && i === pieces.length - 1);
    if (trailers !== undefined) encoder.encodeTrailers(trailers);
    if (this.pendingPaused) {
      this.pendingPaused = false;
      this.downstream.readDisable(false);
    }
    if (this.downstreamFull) encoder.readDisable(true);
    const perTry = this.route!.retry?.per_try_timeout ?? 0;
    if (perTry > 0) {
      this.tryTimeout ??= new Deadline(this);
      this.tryTimeout.arm(deadlines.queue(perTry));
    }
  }

  upstreamInformational(attempt: UpstreamAttempt, h: HeaderMap): void {
    if (this.attempt !== attempt) return;
    if (++attempt.interimResponses > MAX_INTERIM_RESPONSES) {
      this.attemptFailed(attempt, new ShuttleError('SHUTTLE_E_UPSTREAM_PROTOCOL', 'upstream', `more than ${MAX_INTERIM_RESPONSES} interim responses`), 'reset');
      return;
    }
    // 100 was answered by us already (or not asked for); others (103) go on.
    if (h.status !== 100 && !this.responseStarted) this.downstream.encodeInformational(h);
  }

  upstreamHeaders(attempt: UpstreamAttempt, h: HeaderMap, endStream: boolean): void {
    if (this.attempt !== attempt || this.finished) return;
    this.active();
    this.tryTimeout?.cancel();
    const grpcStatus = this.grpc && endStream ? grpcStatusOf(h) : -1;
    if (this.detectsResponses) this.reportResponse(attempt.host, h.status, grpcStatus);
    // A retriable status is retried while the budget allows; past it, the response goes on as it is.
    if (!this.responseStarted && this.retriableResponse(h.status, grpcStatus) && this.takeRetryToken()) {
      this.attemptFailed(attempt, new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', grpcStatus >= 0 ? `upstream answered grpc-status ${grpcStatus}` : `upstream answered ${h.status}`), 'status', h.status);
      return;
    }
    this.status = h.status;
    if (h.status >= 500) this.snap.telemetry.row[this.snap.telemetry.layout.host(attempt.host.index) + H.upstream_rq_error]++;
    if (h.status === 101) {
      // A tunnel lasts as long as its peers want (the listener's idle timeout bounds it).
      this.tunneling = true;
      this.timeout?.cancel();
      this.idleTimer?.cancel();
    }
    if (grpcStatus >= 0) this.grpcStatus = grpcStatus;
    if (!endStream && this.grpc && h.status === 200 && this.grpcRetries()) {
      // Its status may come in trailers right after (no message): held until a message comes, so
      // that a retriable status can still be retried with nothing sent downstream.
      this.heldHeaders = h;
      return;
    }
    this.startResponse(h, endStream);
    if (endStream) this.complete(attempt);
  }

  private startResponse(h: HeaderMap, endStream: boolean): void {
    prepareDownstreamResponse(h, this.route);
    this.responseStarted = true;
    this.out.encodeHeaders(h, endStream);
  }

  /** The route retries on gRPC statuses, and this call may still be retried. */
  private grpcRetries(): boolean {
    const p = this.route?.retry;
    return p !== undefined && p.retry_on.some((r) => GRPC_RETRY_ON[r] !== undefined) && this.mayRetry(true);
  }

  upstreamData(data: Buffer, endStream: boolean, volatile: boolean): void {
    if (this.finished && !this.tunneling) return;
    this.active();
    if (this.heldHeaders !== undefined) {
      this.startResponse(this.heldHeaders, false);
      this.heldHeaders = undefined;
    }
    this.out.encodeData(data, endStream, volatile);
    if (endStream && !this.tunneling) this.complete(this.attempt!);
  }

  upstreamTrailers(t: HeaderMap): void {
    if (this.finished) return;
    if (this.grpc) {
      this.grpcStatus = grpcStatusOf(t);
      if (this.grpcStatus === GrpcStatus.UNAVAILABLE && this.detectsResponses && this.attempt) this.snap.telemetry.upstreamResponded(this.attempt.host, 'gateway');
    }
    const held = this.heldHeaders;
    if (held !== undefined) {
      this.heldHeaders = undefined;
      if (this.retriableResponse(held.status, this.grpcStatus) && this.takeRetryToken()) {
        this.grpcStatus = -1;
        this.attemptFailed(this.attempt!, new ShuttleError('SHUTTLE_E_UPSTREAM_RESET', 'upstream', `upstream answered grpc-status ${grpcStatusOf(t)}`), 'status');
        return;
      }
      this.startResponse(held, false);
    }
    this.out.encodeTrailers(t);
    this.complete(this.attempt!);
  }

  /** The cluster ejects hosts on response failures (outlier_detection consecutive_5xx / gateway). */
  private get detectsResponses(): boolean {
    const od = this.cluster?.config.outlier_detection;
    return od !== undefined && (od.consecutive_5xx !== undefined || od.consecutive_gateway_failure !== undefined || od.success_rate !== undefined);
  }

  private reportResponse(host: Host, status: number, grpcStatus: number): void {
    const gateway = (status >= 502 && status <= 504) || grpcStatus === GrpcStatus.UNAVAILABLE;
    this.snap.telemetry.upstreamResponded(host, gateway ? 'gateway' : status >= 500 ? '5xx' : 'none');
  }

  private complete(attempt: UpstreamAttempt): void {
    this.upstreamMs = approximateNow() - this.tryStartedAt;
    attempt.completed();
    this.attempt = undefined;
    this.finish();
  }

  private retriableResponse(status: number, grpcStatus: number): boolean {
    const p = this.route?.retry;
    if (grpcStatus >= 0) {
      // Retrying on a gRPC status is the route's explicit choice for that call (every gRPC call is
      // a POST), as in Envoy: the method does not restrict it.
      if (!p || !this.mayRetry(true)) return false;
      for (const name of p.retry_on) if (GRPC_RETRY_ON[name] === grpcStatus) return true;
      return false;
    }
    if (!p || !this.mayRetry()) return false;
    return (p.retry_on.includes('5xx') && status >= 500) ||
      (p.retry_on.includes('gateway-error') && status >= 502 && status <= 504) ||
      (p.retry_on.includes('retriable-status-codes') && p.retriable_status_codes.includes(status));
  }

  private mayRetry(anyMethod = false): boolean {
    const p = this.route?.retry;
    if (!p || this.retries >= p.num_retries || !this.bodyReplayable) return false;
    return anyMethod || p.retry_non_idempotent || IDEMPOTENT.has(this.request!.method);
  }

  private policyRetries(kind: FailureKind): boolean {
    if (kind === 'status') return true; // judged retriable already (retriableResponse)
    const p = this.route?.retry;
    // Nothing reached the upstream on a failed connect or a refused stream: any method may go again.
    if (!p || !this.mayRetry(kind === 'connect-failure' || kind === 'refused' || this.grpc)) return false;
    if (kind === 'connect-failure') return p.retry_on.some((r) => r === 'connect-failure' || r === '5xx' || r === 'gateway-error');
    if (kind === 'reset') return p.retry_on.some((r) => r === 'reset' || r === '5xx' || r === 'gateway-error');
    if (kind === 'refused') return p.retry_on.some((r) => r === 'refused-stream' || r === 'reset' || r === '5xx');
    return true; // a retriable status was checked already
  }

  /** A try failed; retry if allowed and nothing was sent downstream yet, else answer. */
  attemptFailed(attempt: UpstreamAttempt, error: ShuttleError, kind: FailureKind, status = 0): void {
    if (this.finished || this.attempt !== attempt) return;
    this.tryTimeout?.cancel();
    const staleKeepAlive = kind === 'reset' && attempt.reused && !attempt.responseBytesSeen;
    // A reset by the upstream is a gateway failure of the host (a stale keep-alive is not).
    if (kind === 'reset' && !staleKeepAlive && this.detectsResponses) this.snap.telemetry.upstreamResponded(attempt.host, 'gateway');
    this.attempt = undefined;
    attempt.abandon();
    if (kind !== 'status' && this.status === 0) this.error = error;
    if (this.responseStarted) return this.cutResponse(error);
    // A request the upstream never processed (a reused keep-alive connection the upstream had
    // just closed, a refused stream, a stream past a GOAWAY) is sent again on a fresh stream,
    // if it can be: what nginx and Envoy do.
    const canReplay = this.bodyReplayable && (IDEMPOTENT.has(this.request!.method) || !!this.route?.retry?.retry_non_idempotent);
    if (staleKeepAlive && !this.staleRetried && canReplay) {
      this.staleRetried = true;
      return this.startAttempt(attempt.host);
    }
    if (kind === 'refused' && this.bodyReplayable && this.unprocessedRetries < MAX_UNPROCESSED_RETRIES) {
      this.unprocessedRetries++;
      return this.startAttempt(attempt.host);
    }
    if (this.policyRetries(kind) && this.takeRetryToken()) {
      this.retries++;
      if (status) this.status = 0;
      return this.startAttempt();
    }
    this.fail(error);
  }

  private takeRetryToken(): boolean {
    const cluster = this.cluster;
    if (!cluster) return false;
    if (this.holdingRetryToken) return true;
    if (!this.ctx.retryBudget.tryRetry(cluster)) return false;
    const held = cluster.breakers.acquire(this.route!.config.priority, 'retries');
    if (held === 'refused') {
      this.ctx.retryBudget.retryEnded(cluster);
      const t = this.snap.telemetry;
      t.row[t.layout.cluster(cluster.index) + C.upstream_rq_retry_overflow]++;
      return false;
    }
    if (held === 'counted') this.breakerHeld |= HELD_RETRY;
    this.holdingRetryToken = true;
    return true;
  }

  /** A circuit breaker of the cluster is full: answered now, counted (Envoy's UO). */
  private overflow(cluster: Cluster, resource: 'requests' | 'pending_requests'): void {
    const t = this.snap.telemetry;
    t.row[t.layout.cluster(cluster.index) + C.upstream_rq_pending_overflow]++;
    this.setResponseFlag('UO');
    this.fail(new ShuttleError('SHUTTLE_E_CIRCUIT_OPEN', 'internal', `cluster ${cluster.name}: max_${resource} reached`));
  }

  /** Starts the shadows of this request (request_mirror_policies), each to its share of requests. */
  private mirror(h: HeaderMap, endStream: boolean, policies: Route['config']['request_mirror_policies'], timeoutMs: number): void {
    for (const p of policies) {
      if (p.percentage < 100 && Math.random() * 100 >= p.percentage) continue;
      const cluster = this.snap.clusters.get(p.cluster);
      if (cluster === undefined) continue;
      (this.shadows ??= []).push(new ShadowRequest(h, endStream, cluster, this.ctx.pools, this.snap.telemetry, timeoutMs));
    }
  }

  // ---- timeouts ------------------------------------------------------------------------------

  /** Bytes of this request or its response moved: its stream idle timer starts again. */
  private active(): void {
    if (this.idleTimer !== undefined && this.idleTimer.armed) this.idleTimer.arm(this.idleTimer.queue!);
  }

  /** No byte of this request or its response moved for stream_idle_timeout. */
  private onStreamIdle(): void {
    if (this.finished) return;
    const ms = this.snap.listener.http.stream_idle_timeout;
    if (!this.requestEnded && !this.responseStarted) {
      // The client stopped sending its body: that is its timeout, and the connection can't go on.
      this.error = new ShuttleError('SHUTTLE_E_STREAM_IDLE_TIMEOUT', 'downstream', `request body stalled for ${ms}ms`);
      this.attempt?.abandon();
      this.attempt = undefined;
      return this.reply({ status: 408, body: `${this.error.message}\n`, code: this.error.code, grpcStatus: GrpcStatus.DEADLINE_EXCEEDED });
    }
    this.timedOut(new ShuttleError('SHUTTLE_E_STREAM_IDLE_TIMEOUT', 'internal', `no byte moved for ${ms}ms`));
  }

  private timedOut(error: ShuttleError): void {
    if (this.finished) return;
    this.attempt?.abandon();
    this.attempt = undefined;
    if (this.responseStarted) this.cutResponse(error);
    else this.fail(error);
  }

  /**
   * The response started and cannot complete. A gRPC call on HTTP/2 still gets a status: its
   * trailers say what happened (UNAVAILABLE, DEADLINE_EXCEEDED) where a reset would only say
   * CANCELLED or INTERNAL. Anything else is reset: the only honest signal left.
   */
  private cutResponse(error: ShuttleError): void {
    this.error = error;
    if (this.grpc && this.downstream.protocol === 'HTTP/2' && !this.tunneling) {
      this.grpcStatus = error.grpcStatus;
      this.out.encodeTrailers(new HeaderMap(['grpc-status', String(this.grpcStatus), 'grpc-message', encodeGrpcMessage(error.message), 'x-shuttle-error', error.code]));
    } else {
      this.out.reset('local');
    }
    this.finish();
  }

  // ---- local replies ------------------------------------------------------------------------

  private fail(error: ShuttleError): void {
    this.error = error;
    this.reply({ status: error.httpStatus || 500, body: `${error.message}\n`, code: error.code, grpcStatus: error.grpcStatus });
  }

  private reply(r: LocalReply): void {
    if (this.finished) return;
    if (this.responseStarted) {
      this.out.reset('local');
      return this.finish();
    }
    this.responseStarted = true;
    this.status = sendLocalReply(this.out, this.grpc, this.headRequest, r);
    if (this.grpc) this.grpcStatus = r.grpcStatus ?? -1;
    this.finish();
  }

  private redirect(r: NonNullable<Route['config']['redirect']>): void {
    const h = this.request!;
    let path = h.path;
    const prefix = this.route!.config.match.prefix;
    if (r.path !== undefined) path = r.path;
    else if (r.prefix_rewrite !== undefined && prefix !== undefined && path.startsWith(prefix)) path = r.prefix_rewrite + path.slice(prefix.length);
    const location = `${r.scheme ?? 'http'}://${r.host ?? h.authority}${path}`;
    this.reply({ status: r.status, body: `redirecting to ${location}\n`, headers: [['location', location]] });
  }

  // ---- the end --------------------------------------------------------------------------------

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.snap.telemetry.streams(-1);
    const error = this.error;
    if (error !== undefined) {
      const flag = FLAG_OF_ERROR[error.code];
      if (flag !== undefined) this.setResponseFlag(flag);
    }
    if (this.flags !== 0) this.snap.telemetry.responseFlags(this.snap.listenerIndex, this.flags);
    this.snap.telemetry.recordRequest(this.snap.listenerIndex, this.route?.config, this.cluster?.index ?? -1, this.status, approximateNow() - this.startedAt, this.upstreamMs, this.retries, error?.code);
    this.filters?.streamEnded(this.downstreamGone);
    this.timeout?.cancel();
    this.tryTimeout?.cancel();
    this.idleTimer?.cancel();
    if (this.pendingPaused) {
      this.pendingPaused = false;
      this.downstream.readDisable(false);
    }
    const cluster = this.cluster;
    if (cluster) {
      if (this.breakerHeld !== 0) {
        const priority = this.route!.config.priority;
        if (this.breakerHeld & HELD_REQUEST) cluster.breakers.release(priority, 'requests');
        if (this.breakerHeld & HELD_RETRY) cluster.breakers.release(priority, 'retries');
      }
      this.ctx.retryBudget.requestEnded(cluster);
      if (this.holdingRetryToken) this.ctx.retryBudget.retryEnded(cluster);
      if (this.grpcStatus >= 0 && this.grpcStatus <= 16) {
        const t = this.snap.telemetry;
        t.row[t.layout.cluster(cluster.index) + C.upstream_rq_grpc_0 + this.grpcStatus]++;
      }
    }
    if (this.snap.listener.access_log) this.accessLog();
  }

  private accessLog(): void {
    const h = this.request;
    this.ctx.logger.info({
      msg: 'access',
      conn: this.conn.id,
      listener: this.snap.listener.name,
      method: h?.method ?? null,
      authority: this.authority,
      path: this.path,
      protocol: this.downstream.protocol,
      status: this.status,
      grpc_status: this.grpc ? (this.grpcStatus >= 0 ? this.grpcStatus : null) : undefined,
      bytes_received: this.bytesReceived,
      bytes_sent: this.downstream.bytesSent,
      duration_ms: Math.round((approximateNow() - this.startedAt) * 1000) / 1000,
      route: this.route?.name ?? null,
      cluster: this.cluster?.name ?? null,
      tls: this.conn.tls ? { sni: this.conn.tls.sni ?? null, version: this.conn.tls.version, peer: this.conn.tls.peer?.identity ?? null } : undefined,
      upstream: this.lastHost?.address ?? null,
      retries: this.retries,
      error: this.error?.code ?? null,
      response_flags: this.flags === 0 ? '-' : responseFlagsText(this.flags),
      ...(this.filters !== undefined ? metadataFields(this.filters.info.metadata) : undefined),
    });
  }
}

