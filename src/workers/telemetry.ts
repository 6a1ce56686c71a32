/**
 * What a worker records about its traffic: counters in its own row of the shared stats table, and
 * upstream events for the outlier detector through its ring. One object per worker, handed to
 * every session.
 */
import type { Host } from '../cluster/host.ts';
import type { UpstreamReporter } from '../shared/events.ts';
import { C, H, L, type StatsLayout } from '../shared/stats-table.ts';
import type { FilterCounter } from '../filters/api.ts';

const STREAMS_PUBLISH_MS = 5;

export class WorkerTelemetry {
  /** This worker's row: written by this thread only. */
  readonly row: Float64Array;
  readonly layout: StatsLayout;
  private readonly reporter: UpstreamReporter;
  private readonly onStreams: (delta: number) => void;

  /** One per config generation; all of a worker's share its row, its reporter and its load row. */
  constructor(row: Float64Array, layout: StatsLayout, reporter: UpstreamReporter, onStreams: (delta: number) => void = () => {}) {
    this.row = row;
    this.layout = layout;
    this.reporter = reporter;
    this.onStreams = onStreams;
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

  upstreamConnected(host: Host): void {
    this.reporter.connected(host.index);
  }

  /** A response (or a reset) from the host, for outlier detection on responses. */
  upstreamResponded(host: Host, failure: 'none' | '5xx' | 'gateway'): void {
    this.reporter.responded(host.index, failure);
  }
}
