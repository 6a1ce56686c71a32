/**
 * What the dashboard polls (GET /dashboard/data): a snapshot of cumulative figures read from the
 * shared tables and main-thread state. The page turns two snapshots into rates and percentiles,
 * so the server keeps no history and any number of dashboards cost only their polls.
 */
import { L, C, H } from '../../shared/stats-table.ts';
import { flagNames } from '../../shared/health-table.ts';
import { workerStateName } from '../../shared/load-table.ts';
import { LATENCY_BUCKETS, RequestCells, type CodeCount, type HistogramSnapshot } from '../../shared/request-table.ts';
import type { AdminState } from '../routes.ts';
import { serverInfo, type ProcessFacts } from '../server-info.ts';

/** Requests answered and those answered 5xx, from a codes block. */
function outcomes(codes: CodeCount[]): { requests: number; errors: number } {
  let requests = 0;
  let errors = 0;
  for (const c of codes) {
    requests += c.count;
    if (c.class === '5xx') errors += c.count;
  }
  return { requests, errors };
}

export interface DashboardData {
  time: number;
  server: ReturnType<typeof serverInfo>;
  /** Upper bounds (seconds) of the histograms' buckets; their last cell is +Inf. */
  latency_buckets: readonly number[];
  worker_restarts: number;
  workers: { slot: number; state: string; worker_id: number; active_connections: number; total_connections: number; active_streams: number; restarts: number; event_loop_utilization: number | null; ring_dropped_events: number }[];
  listeners: { name: string; address: string | null; protocol: string; active_connections: number; total_connections: number; requests: number; errors: number; latency: HistogramSnapshot }[];
  clusters: {
    name: string; panic: boolean; healthy_hosts: number; total_hosts: number; requests: number; errors: number; retries: number; timeouts: number;
    latency: HistogramSnapshot; connect_latency: HistogramSnapshot;
    hosts: { address: string; health: 'healthy' | 'unhealthy'; flags: string[]; active_connections: number; total_connections: number; requests: number; errors: number; connect_failures: number }[];
  }[];
}

export function dashboardData(s: AdminState, facts: ProcessFacts): DashboardData {
  const { stats, requests, health } = s;
  const layout = stats.layout;
  const config = s.config();
  const bound = new Map(s.listeners().map((l) => [l.name, l.address]));
  const workers = s.pool.info();
  return {
    time: Date.now(),
    server: serverInfo(s, facts),
    latency_buckets: LATENCY_BUCKETS,
    worker_restarts: s.pool.totalRestarts,
    workers: workers.map((w) => ({
      slot: w.slot, state: workerStateName(w.state), worker_id: w.workerId, active_connections: w.activeConnections, total_connections: w.totalConnections,
      active_streams: w.activeStreams, restarts: w.restarts, event_loop_utilization: w.eventLoopUtilization, ring_dropped_events: w.droppedEvents,
    })),
    listeners: layout.listeners.map((name, i) => {
      const id = layout.listenerIds[i];
      const base = layout.listener(id);
      const block = RequestCells.listener(id);
      return {
        name, address: bound.get(name) ?? null, protocol: config.listeners[i]?.protocol ?? 'tcp',
        active_connections: stats.sum(base + L.downstream_cx_active), total_connections: stats.sum(base + L.downstream_cx_total),
        ...outcomes(requests.codes(block)), latency: requests.histogram(RequestCells.firstHistogram(block)),
      };
    }),
    clusters: layout.clusters.map((name, i) => {
      const id = layout.clusterIds[i];
      const base = layout.cluster(id);
      const block = RequestCells.cluster(id);
      const hosts = layout.hosts.filter((h) => h.clusterIndex === id).map((h) => {
        const hb = layout.host(h.index);
        const flags = health.flags(h.index);
        return {
          address: h.address, health: flags === 0 ? 'healthy' as const : 'unhealthy' as const, flags: flagNames(flags),
          active_connections: stats.sum(hb + H.upstream_cx_active), total_connections: stats.sum(hb + H.upstream_cx_total),
          requests: stats.sum(hb + H.upstream_rq_total), errors: stats.sum(hb + H.upstream_rq_error), connect_failures: stats.sum(hb + H.upstream_cx_connect_fail),
        };
      });
      return {
        name, panic: health.panic(id), healthy_hosts: hosts.filter((h) => h.health === 'healthy').length, total_hosts: hosts.length,
        ...outcomes(requests.codes(block)), retries: stats.sum(base + C.upstream_rq_retry), timeouts: stats.sum(base + C.upstream_rq_timeout),
        latency: requests.histogram(RequestCells.firstHistogram(block)), connect_latency: requests.histogram(RequestCells.secondHistogram(block)),
        hosts,
      };
    }),
  };
}
