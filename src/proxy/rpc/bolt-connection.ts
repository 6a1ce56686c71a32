/**
 * One downstream SOFA Bolt connection: many requests in flight at once, each routed by its
 * service, sent on a multiplexed upstream connection under a remapped id, and answered in
 * whatever order the upstreams answer. Heartbeats are answered here. Failures are answered in
 * Bolt itself (status codes), so a client sees an RPC error, not a dropped connection.
 *
 *   no route → NO_PROCESSOR (6) · no host / connect failure → ERROR_COMM (5)
 *   timeout → TIMEOUT (7) · upstream connection lost → CONNECTION_CLOSED (0x10)
 */
import type net from 'node:net';
import { BoltCmd, BoltProtocolError, BoltStatus, boltResponse, decodeBoltFrame, isResponse, parseHeaderMap, setRequestId, type BoltFrame } from '../../codecs/bolt/frame.ts';
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { RpcRoute } from '../../router/rpc-router.ts';
import { H, L } from '../../shared/stats-table.ts';
import type { MuxCodec, MuxFailure } from '../../stream/mux-pool.ts';
import type { RpcProxyContext } from './context.ts';

export const boltCodec: MuxCodec<BoltFrame> = {
  decode: decodeBoltFrame,
  requestId: (f) => f.requestId,
  setRequestId,
  raw: (f) => f.raw,
  isResponse,
  heartbeatReply: (f) => (f.cmdCode === BoltCmd.HEARTBEAT ? boltResponse(f, BoltStatus.SUCCESS, { heartbeat: true }) : undefined),
};

/** How long an idle connection is kept during a drain, for a request already on its way. */
const DRAIN_IDLE_GRACE_MS = 1_000;

export class BoltConnection {
  readonly socket: net.Socket;
  readonly id: string;
  private readonly ctx: RpcProxyContext;
  private readonly onClose: (c: BoltConnection) => void;
  private buffer: Buffer | undefined;
  private inFlight = 0;
  private draining = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(socket: net.Socket, id: string, ctx: RpcProxyContext, onClose: (c: BoltConnection) => void) {
    this.socket = socket;
    this.id = id;
    this.ctx = ctx;
    this.onClose = onClose;
  }

  start(initial?: Buffer): void {
    const s = this.socket;
    const snap = this.ctx.snapshot();
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('error', () => {});
    s.once('close', () => {
      this.closed = true;
      clearTimeout(this.drainTimer);
      snap.telemetry.downstreamClosed(snap.listenerIndex);
      this.onClose(this);
    });
    s.setTimeout(snap.listener.idle_timeout, () => s.destroy());
    snap.telemetry.downstreamOpened(snap.listenerIndex);
    if (initial) this.onData(initial);
    s.resume();
  }

  /** Plain Bolt peers know no goaway: keep serving until idle, then close after a short grace. */
  drain(): void {
    this.draining = true;
    this.closeIfIdle();
  }

  abort(): void {
    this.socket.destroy();
  }

  private closeIfIdle(): void {
    if (!this.draining || this.inFlight > 0 || this.drainTimer) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      if (this.inFlight === 0) this.socket.end();
    }, DRAIN_IDLE_GRACE_MS);
    this.drainTimer.unref();
  }

  private onData(chunk: Buffer): void {
    const snap = this.ctx.snapshot();
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_cx_rx_bytes_total] += chunk.length;
    const buf = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    this.buffer = undefined;
    let offset = 0;
    try {
      for (;;) {
        const decoded = decodeBoltFrame(buf, offset, snap.listener.rpc!.max_frame_bytes);
        if (!decoded) break;
        offset += decoded.length;
        this.onFrame(decoded.frame);
      }
    } catch (err) {
      if (!(err instanceof BoltProtocolError)) throw err;
      // No request id can be trusted in a malformed stream: count it and close this connection only.
      snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_cx_protocol_error]++;
      this.ctx.logger.info({ conn: this.id, listener: snap.listener.name, error: err.code, reason: err.message }, 'malformed Bolt frame; connection closed');
      this.socket.destroy();
      return;
    }
    if (offset < buf.length) this.buffer = buf.subarray(offset);
  }

  private write(data: Buffer): void {
    if (this.closed) return;
    const snap = this.ctx.snapshot();
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_cx_tx_bytes_total] += data.length;
    this.socket.write(data);
  }

  private onFrame(frame: BoltFrame): void {
    if (isResponse(frame)) return; // a client has nothing to answer; ignore
    if (frame.cmdCode === BoltCmd.HEARTBEAT) return this.write(boltResponse(frame, BoltStatus.SUCCESS, { heartbeat: true }));
    const snap = this.ctx.snapshot();
    snap.telemetry.row[snap.telemetry.layout.listener(snap.listenerIndex) + L.downstream_rq_total]++;
    const headers = parseHeaderMap(frame.header);
    const lower = new Map<string, string>();
    for (const [k, v] of headers) lower.set(k.toLowerCase(), v);
    const service = headers.get('service') ?? headers.get('sofa_head_target_service') ?? '';
    const call = { service, method: headers.get('sofa_head_method_name'), header: (n: string) => lower.get(n) };
    new BoltCall(this, frame, call.service, snap.router.route(call), snap.clusters.get.bind(snap.clusters)).start();
  }

  /** @internal used by BoltCall */
  callStarted(): void {
    this.inFlight++;
  }

  /** @internal used by BoltCall */
  callEnded(reply: Buffer | undefined): void {
    if (reply) this.write(reply);
    this.inFlight--;
    this.closeIfIdle();
  }

  get context(): RpcProxyContext {
    return this.ctx;
  }
}

/** One Bolt request through the proxy. */
class BoltCall {
  private readonly conn: BoltConnection;
  private readonly frame: BoltFrame;
  private readonly originalId: number;
  private readonly service: string;
  private readonly route: RpcRoute | undefined;
  private readonly clusterOf: (name: string) => Cluster | undefined;
  private readonly oneway: boolean;
  private readonly tried = new Set<Host>();
  private readonly startedAt = performance.now();
  private cancel: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(conn: BoltConnection, frame: BoltFrame, service: string, route: RpcRoute | undefined, clusterOf: (name: string) => Cluster | undefined) {
    this.conn = conn;
    this.frame = frame;
    this.originalId = frame.requestId;
    this.service = service;
    this.route = route;
    this.clusterOf = clusterOf;
    this.oneway = frame.type === 2;
  }

  start(): void {
    this.conn.callStarted();
    if (!this.route) return this.finish(BoltStatus.NO_PROCESSOR, 'SHUTTLE_E_NO_ROUTE', null);
    const name = this.route.cluster();
    const cluster = name ? this.clusterOf(name) : undefined;
    if (!cluster) return this.finish(BoltStatus.NO_PROCESSOR, 'SHUTTLE_E_NO_CLUSTER', null);
    const timeout = this.route.timeout > 0 ? this.route.timeout : this.frame.timeout > 0 ? this.frame.timeout : 0;
    if (timeout > 0 && !this.oneway) this.timer = setTimeout(() => this.finish(BoltStatus.TIMEOUT, 'SHUTTLE_E_UPSTREAM_TIMEOUT', null), timeout);
    this.attempt(cluster);
  }

  private attempt(cluster: Cluster): void {
    const host = cluster.lb.choose(this.tried);
    if (!host) return this.finish(BoltStatus.ERROR_COMM, 'SHUTTLE_E_NO_HEALTHY_HOST', null);
    this.tried.add(host);
    const ctx = this.conn.context;
    const snap = ctx.snapshot();
    const pool = ctx.pools.get(host, cluster, snap.listener.rpc!, snap.telemetry);
    const upstream = pool.connection();
    snap.telemetry.row[snap.telemetry.layout.host(host.index) + H.upstream_rq_total]++;
    const id = upstream.send(this.frame, this.oneway ? undefined : {
      onResponse: (resp) => {
        setRequestId(resp, this.originalId);
        this.finish(resp.status, null, host, resp.raw);
      },
      onFail: (kind: MuxFailure) => {
        snap.telemetry.row[snap.telemetry.layout.host(host.index) + H.upstream_rq_error]++;
        // Not sent (connect failed): another host may take it. Sent and lost: the caller decides.
        if (kind === 'connect' && !this.done) return this.attempt(cluster);
        this.finish(BoltStatus.CONNECTION_CLOSED, 'SHUTTLE_E_UPSTREAM_RESET', host);
      },
    });
    this.cancel = () => upstream.cancel(id);
    if (this.oneway) this.finish(BoltStatus.SUCCESS, null, host);
  }

  private finish(status: number, error: string | null, host: Host | null, reply?: Buffer): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    if (error) this.cancel?.();
    const ctx = this.conn.context;
    const snap = ctx.snapshot();
    if (snap.listener.access_log) {
      ctx.logger.info({
        msg: 'access', conn: this.conn.id, listener: snap.listener.name, protocol: 'bolt', service: this.service,
        request_id: this.originalId, oneway: this.oneway, status, upstream: host?.address ?? null, attempts: this.tried.size,
        duration_ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000, error,
      });
    }
    // Oneway calls get no answer, not even an error one.
    // The frame's id was remapped for the upstream: answer under the caller's own id.
    this.conn.callEnded(this.oneway ? undefined : reply ?? boltResponse({ ...this.frame, requestId: this.originalId }, status, { message: error ?? undefined }));
  }
}
