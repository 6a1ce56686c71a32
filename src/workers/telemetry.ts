/**
 * What a worker records about its traffic: counters in its own row of the shared stats table, and
 * upstream events for the outlier detector through its ring. One object per worker, handed to
 * every session.
 */
import type { Host } from '../cluster/host.ts';
import type { UpstreamReporter } from '../shared/events.ts';
import { C, H, L, type StatsLayout } from '../shared/stats-table.ts';
import { RequestCells, recordLatency, recordStatus } from '../shared/request-table.ts';
import type { FilterCounter } from '../filters/api.ts';

const STREAMS_PUBLISH_MS = 5;

export class WorkerTelemetry {
  /** This worker's row: written by this thread only. */
  readonly row: Float64Array;
  /** This worker's row of the request table (status codes, latency histograms). */
  readonly requests: Float64Array;
  readonly layout: StatsLayout;
  private readonly reporter: UpstreamReporter;
  private readonly onStreams: (delta: number) => void;

  /** One per config generation; all of a worker's share its rows, its reporter and its load row. */
  constructor(row: Float64Array, requests: Float64Array, layout: StatsLayout, reporter: UpstreamReporter, onStreams: (delta: number) => void = () => {}) {
    this.row = row;
    this.requests = requests;
    this.layout = layout;
    this.reporter = reporter;
    this.onStreams = onStreams;
  }

  /**
   * A request (HTTP) or call (RPC) ended: one call at the end of each, whatever happened.
   *
   * `status`: the HTTP status sent (0: none); RPC calls pass their HTTP equivalent. `route`: the
   * route's config (counted on its own when named). `cluster`: stable id, -1 when not routed to one.
   * `upstreamMs`: the last try, from its start (connect included) to the end of the upstream's
   * response; -1 when no upstream answered. `error`: the ShuttleError code the request ended with.
   */
  recordRequest(listener: number, route: object | undefined, cluster: number, status: number, durationMs: number, upstreamMs: number, retries: number, error: string | undefined): void {
    const requests = this.requests;
    const lb = RequestCells.listener(listener);
    recordStatus(requests, lb, status);
    recordLatency(requests, RequestCells.firstHistogram(lb), durationMs);
    if (route !== undefined) {
      const id = this.layout.routeIds.get(route);
      if (id !== undefined && id >= 0) {
        const rb = RequestCells.route(id);
        recordStatus(requests, rb, status);
        recordLatency(requests, RequestCells.firstHistogram(rb), durationMs);
      }
    }
    if (error === 'SHUTTLE_E_STREAM_IDLE_TIMEOUT') this.row[this.layout.listener(listener) + L.downstream_rq_idle_timeout]++;
    if (cluster < 0) return;
    const cb = RequestCells.cluster(cluster);
    recordStatus(requests, cb, status);
    if (upstreamMs >= 0) recordLatency(requests, RequestCells.firstHistogram(cb), upstreamMs);
    const base = this.layout.cluster(cluster);
    if (retries > 0) {
      this.row[base + C.upstream_rq_retry] += retries;
      if (status > 0 && status < 500) this.row[base + C.upstream_rq_retry_success]++;
    }
    if (error === 'SHUTTLE_E_UPSTREAM_TIMEOUT') this.row[base + C.upstream_rq_timeout]++;
    // The host's pool was full (Envoy counts pool overflows with the pending-request breaker's).
    else if (error === 'SHUTTLE_E_UPSTREAM_OVERFLOW') this.row[base + C.upstream_rq_pending_overflow]++;
  }

  /**
   * A request (HTTP) or call (RPC) started or ended: the worker's active streams in the load
   * table. Published at most every few milliseconds (one atomic add per batch, not two per
   * request): the figure is for the admin API, which can read it a little late.
   */
  streams(delta: number): void {
    this.pendingStreams += delta;
    if (this.publishScheduled) return;
    this.publishScheduled = true;
    setTimeout(this.publishStreams, STREAMS_PUBLISH_MS).unref();
  }

  private pendingStreams = 0;
  private publishScheduled = false;
  private readonly publishStreams = (): void => {
    this.publishScheduled = false;
    const d = this.pendingStreams;
    this.pendingStreams = 0;
    if (d !== 0) this.onStreams(d);
  };

  downstreamOpened(listener: number): void {
    const base = this.layout.listener(listener);
    this.row[base + L.downstream_cx_total]++;
    this.row[base + L.downstream_cx_active]++;
  }

  downstreamClosed(listener: number): void {
    this.row[this.layout.listener(listener) + L.downstream_cx_active]--;
  }

  /** A request ended with these response flags (bits, see filters/response-flags.ts). */
  responseFlags(listener: number, bits: number): void {
    const base = this.layout.listener(listener) + L.rq_flag_FI;
    for (let i = 0; bits !== 0; i++, bits >>>= 1) if (bits & 1) this.row[base + i]++;
  }

  /** A filter's decision (rbac, jwt_authn). */
  filterDecision(listener: number, counter: FilterCounter): void {
    this.row[this.layout.listener(listener) + L[counter]]++;
  }

  noHealthyHost(cluster: number): void {
    this.row[this.layout.cluster(cluster) + C.upstream_cx_none_healthy]++;
  }

  upstreamConnecting(host: Host): void {
    const base = this.layout.host(host.index);
    this.row[base + H.upstream_cx_total]++;
    this.row[base + H.upstream_cx_active]++;
  }

  upstreamClosed(host: Host): void {
    this.row[this.layout.host(host.index) + H.upstream_cx_active]--;
  }

  upstreamConnectFailed(host: Host, timedOut: boolean): void {
    const base = this.layout.host(host.index);
    this.row[base + H.upstream_cx_connect_fail]++;
    if (timedOut) this.row[base + H.upstream_cx_connect_timeout]++;
    this.reporter.connectFailed(host.index);
  }

  /** TLS to the host failed (handshake, certificate, SAN): also a connect failure. */
  upstreamTlsFailed(host: Host): void {
    this.row[this.layout.host(host.index) + H.upstream_cx_ssl_fail]++;
  }

  /** A connect (TLS handshake included) succeeded after `connectMs`. */
  upstreamConnected(host: Host, connectMs: number): void {
    recordLatency(this.requests, RequestCells.secondHistogram(RequestCells.cluster(host.clusterIndex)), connectMs);
    this.reporter.connected(host.index);
  }

  /** A response (or a reset) from the host, for outlier detection on responses. */
  upstreamResponded(host: Host, failure: 'none' | '5xx' | 'gateway'): void {
    this.reporter.responded(host.index, failure);
  }
}
