/**
 * Metrics of requests as they ended, from the request table (summed over workers at scrape):
 * latency histograms per listener, cluster and named route, and responses by status code.
 * Labels stay bounded: codes are the tracked ones seen (others are "other"), routes are the named
 * ones, listeners and clusters those of the running config.
 */
import { Counter, type Registry } from 'prom-client';
import { RequestCells, type CodeCount, type RequestTable } from '../shared/request-table.ts';
import type { StatsLayout } from '../shared/stats-table.ts';
import { SharedHistogram } from './shared-histogram.ts';

export function registerRequestMetrics(register: Registry, requests: RequestTable, layout: () => StatsLayout): void {
  const listeners = () => layout().listeners.map((listener, i) => ({ labels: { listener }, block: RequestCells.listener(layout().listenerIds[i]) }));
  const clusters = () => layout().clusters.map((cluster, i) => ({ labels: { cluster }, block: RequestCells.cluster(layout().clusterIds[i]) }));
  const routes = () => layout().routes.map((r) => ({ labels: { listener: r.listener, route: r.route }, block: RequestCells.route(r.id) }));

  new SharedHistogram(register, {
    name: 'shuttle_listener_downstream_rq_time_seconds',
    help: 'time from a request\'s headers (an RPC call\'s frame) to the end of its response, per listener',
    series: () => listeners().map(({ labels, block }) => ({ labels, histogram: requests.histogram(RequestCells.firstHistogram(block)) })),
  });
  new SharedHistogram(register, {
    name: 'shuttle_cluster_upstream_rq_time_seconds',
    help: 'time from the start of the last try (connect included) to the end of the upstream response, for responses from upstream',
    series: () => clusters().map(({ labels, block }) => ({ labels, histogram: requests.histogram(RequestCells.firstHistogram(block)) })),
  });
  new SharedHistogram(register, {
    name: 'shuttle_cluster_upstream_cx_connect_time_seconds',
    help: 'time to open an upstream connection (TLS handshake included), successful connects only',
    series: () => clusters().map(({ labels, block }) => ({ labels, histogram: requests.histogram(RequestCells.secondHistogram(block)) })),
  });
  new SharedHistogram(register, {
    name: 'shuttle_route_rq_time_seconds',
    help: 'time from a request\'s headers to the end of its response, per named route',
    series: () => routes().map(({ labels, block }) => ({ labels, histogram: requests.histogram(RequestCells.firstHistogram(block)) })),
  });

  const byCode = (name: string, help: string, labelNames: string[], entities: () => { labels: Record<string, string>; block: number }[]) => new Counter({
    name, help, labelNames: [...labelNames, 'response_code_class', 'response_code'], registers: [register],
    collect() {
      this.reset();
      for (const { labels, block } of entities()) {
        for (const c of requests.codes(block)) this.inc(codeLabels(labels, c), c.count);
      }
    },
  });
  byCode('shuttle_listener_downstream_rq_completed_total', 'requests and RPC calls answered, by the status sent to the client (RPC: its HTTP equivalent)', ['listener'], listeners);
  byCode('shuttle_cluster_upstream_rq_completed_total', 'requests and RPC calls routed to the cluster, by the status sent to the client after retries', ['cluster'], clusters);
  byCode('shuttle_route_rq_completed_total', 'requests and RPC calls matched by a named route, by the status sent to the client', ['listener', 'route'], routes);
}

function codeLabels(labels: Record<string, string>, c: CodeCount): Record<string, string> {
  return { ...labels, response_code_class: c.class, response_code: c.code };
}
