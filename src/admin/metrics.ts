/**
 * /metrics: Prometheus text built by prom-client at scrape time from the shared tables. The admin
 * reads the workers' counters straight from shared memory; it never asks a worker.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MigrationStats } from '../upgrade/migration-intake.ts';
import type { WorkerPool } from '../acceptor/worker-pool.ts';
import type { HealthTable } from '../shared/health-table.ts';
import type { CircuitBreakersConfig } from '../config/schema.ts';
import { RESPONSE_FLAG_NAMES } from '../filters/response-flags.ts';
import { BREAKER_RESOURCES } from '../filters/shared/policy-table.ts';
import { C, CLUSTER_COUNTERS, HOST_COUNTERS, L, LISTENER_COUNTERS, isGauge, type StatsTable } from '../shared/stats-table.ts';
import { HealthFlag } from '../shared/health-table.ts';
import type { RequestTable } from '../shared/request-table.ts';
import { EJECTION_TYPES, type HealthStats } from '../cluster/health/health-stats.ts';
import { NODE_VERSION, SHUTTLE_VERSION } from '../build-info.ts';
import { registerRequestMetrics } from './request-metrics.ts';
import type { XdsStatus } from '../xds/xds-manager.ts';

export interface MetricsSources {
  stats: StatsTable;
  /** Status codes and latency histograms. */
  requests: RequestTable;
  health: HealthTable;
  /** Active-check outcomes and ejections (main thread). */
  healthStats: HealthStats;
  pool: WorkerPool;
  /** Main-thread facts: config generation, reload failures, … */
  info: () => { generation: number; reload: { attempts: number; failures: number } };
  /** Seconds until each listener certificate expires. */
  certificates?: () => { listener: string; certificate: string; expiresAt: number }[];
  /** Connections this process took over in its upgrade (connection migration). */
  migration?: MigrationStats;
  /** Clusters with circuit breakers: their stable ids and thresholds. */
  breakers?: () => { cluster: string; id: number; config: CircuitBreakersConfig }[];
  /** Started with --bootstrap: the xDS client's state. */
  xds?: () => XdsStatus | undefined;
}

export function createMetricsRegistry(src: MetricsSources): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'shuttle_' }); // shuttle_process_*, shuttle_nodejs_* (main thread)
  // Gauges prom-client names *_total, which Prometheus keeps for counters (promtool refuses them);
  // each is the sum of its by-type gauge (shuttle_nodejs_active_handles{type}, …).
  for (const name of ['active_handles', 'active_requests', 'active_resources']) register.removeSingleMetric(`shuttle_nodejs_${name}_total`);
  const { stats } = src;

  // One metric per counter name, read from the summed worker rows.
  const family = (scope: string, names: readonly string[], labelNames: string[], each: (set: (offset: number, labels: Record<string, string>) => void, field: number) => void) => {
    names.forEach((name, field) => {
      if (name.startsWith('upstream_rq_grpc_') || name.startsWith('ssl_handshake_error_') || name === 'ssl_tls12' || name === 'ssl_tls13' || name.startsWith('rq_flag_')) return; // labelled metrics below
      // Envoy's stat names, with Prometheus' `_total` on every counter.
      const metricName = `shuttle_${scope}_${name}${isGauge(name) || name.endsWith('_total') ? '' : '_total'}`;
      const opts = { name: metricName, help: `${scope} ${name.replaceAll('_', ' ')} (sum over workers)`, labelNames, registers: [register] };
      if (isGauge(name)) {
        new Gauge({ ...opts, collect() {
          this.reset();
          each((offset, labels) => this.set(labels, stats.sum(offset)), field);
        } });
      } else {
        new Counter({ ...opts, collect() {
          this.reset();
          each((offset, labels) => this.inc(labels, stats.sum(offset)), field);
        } });
      }
    });
  };
  // The layout is read at each scrape: a reload may have changed it.
  family('listener', LISTENER_COUNTERS, ['listener'], (set, field) => stats.layout.listeners.forEach((listener, i) => set(stats.layout.listener(stats.layout.listenerIds[i]) + field, { listener })));
  family('cluster', CLUSTER_COUNTERS, ['cluster'], (set, field) => stats.layout.clusters.forEach((cluster, i) => set(stats.layout.cluster(stats.layout.clusterIds[i]) + field, { cluster })));
  family('host', HOST_COUNTERS, ['cluster', 'host'], (set, field) => stats.layout.hosts.forEach((h) => set(stats.layout.host(h.index) + field, { cluster: h.cluster, host: h.address })));

  new Counter({ name: 'shuttle_cluster_upstream_rq_grpc_total', help: 'gRPC responses by grpc-status (sum over workers)', labelNames: ['cluster', 'grpc_status'], registers: [register], collect() {
    this.reset();
    stats.layout.clusters.forEach((cluster, i) => {
      const base = stats.layout.cluster(stats.layout.clusterIds[i]) + C.upstream_rq_grpc_0;
      for (let g = 0; g <= 16; g++) {
        const n = stats.sum(base + g);
        if (n > 0) this.inc({ cluster, grpc_status: String(g) }, n);
      }
    });
  } });
  const labelled = (name: string, help: string, label: string, fields: Record<string, number>) => new Counter({ name, help, labelNames: ['listener', label], registers: [register], collect() {
    this.reset();
    stats.layout.listeners.forEach((listener, i) => {
      const base = stats.layout.listener(stats.layout.listenerIds[i]);
      for (const [value, field] of Object.entries(fields)) {
        const n = stats.sum(base + field);
        if (n > 0) this.inc({ listener, [label]: value }, n);
      }
    });
  } });
  labelled('shuttle_listener_ssl_handshake_error_total', 'TLS handshakes that failed, by reason (sum over workers)', 'reason', {
    timeout: L.ssl_handshake_error_timeout, no_client_cert: L.ssl_handshake_error_no_client_cert, bad_client_cert: L.ssl_handshake_error_bad_client_cert, protocol: L.ssl_handshake_error_protocol, other: L.ssl_handshake_error_other,
  });
  labelled('shuttle_listener_downstream_rq_response_flag_total', 'requests by response flag: which filter or failure answered (FI fault, RL rate limit, UAEX jwt, RBAC, UO overflow, …)', 'flag',
    Object.fromEntries(RESPONSE_FLAG_NAMES.map((f) => [f, L[`rq_flag_${f}`]])));
  labelled('shuttle_listener_ssl_handshakes_by_version_total', 'TLS handshakes done, by protocol version (sum over workers)', 'version', { 'TLSv1.2': L.ssl_tls12, 'TLSv1.3': L.ssl_tls13 });
  new Gauge({ name: 'shuttle_host_healthy', help: '1 if the host is healthy (active checks passing, not ejected)', labelNames: ['cluster', 'host'], registers: [register], collect() {
    this.reset();
    for (const h of stats.layout.hosts) this.set({ cluster: h.cluster, host: h.address }, src.health.healthy(h.index) ? 1 : 0);
  } });
  new Gauge({ name: 'shuttle_cluster_panic', help: '1 while the cluster has too few healthy hosts and balances over all', labelNames: ['cluster'], registers: [register], collect() {
    this.reset();
    stats.layout.clusters.forEach((cluster, i) => this.set({ cluster }, src.health.panic(stats.layout.clusterIds[i]) ? 1 : 0));
  } });
  new Counter({ name: 'shuttle_config_reloads_total', help: 'config reload attempts by result', labelNames: ['result'], registers: [register], collect() {
    this.reset();
    const r = src.info().reload;
    this.inc({ result: 'success' }, r.attempts - r.failures);
    this.inc({ result: 'failure' }, r.failures);
  } });
  new Gauge({ name: 'shuttle_worker_connections_active', help: 'connections a worker holds now', labelNames: ['worker'], registers: [register], collect() {
    this.reset();
    for (const w of src.pool.info()) this.set({ worker: String(w.slot) }, w.activeConnections);
  } });
  new Gauge({ name: 'shuttle_worker_event_loop_utilization', help: 'share of time a worker\'s event loop was busy since the previous scrape', labelNames: ['worker'], registers: [register], collect() {
    this.reset();
    for (const w of src.pool.info()) if (w.eventLoopUtilization !== null) this.set({ worker: String(w.slot) }, w.eventLoopUtilization);
  } });
  new Gauge({ name: 'shuttle_worker_heap_used_bytes', help: 'V8 heap a worker uses (shuttle_nodejs_heap_* are the main thread\'s)', labelNames: ['worker'], registers: [register], async collect() {
    const heaps = await src.pool.heapUsed();
    this.reset();
    for (const h of heaps) this.set({ worker: String(h.slot) }, h.bytes);
  } });
  new Counter({ name: 'shuttle_worker_restarts_total', help: 'workers replaced after an unexpected exit', registers: [register], collect() {
    this.reset();
    this.inc(src.pool.totalRestarts);
  } });
  new Counter({ name: 'shuttle_ring_dropped_events_total', help: 'worker events dropped because a ring was full', registers: [register], collect() {
    this.reset();
    this.inc(src.pool.droppedEvents);
  } });
  new Gauge({ name: 'shuttle_tls_certificate_expiry_seconds', help: 'seconds until a listener certificate expires', labelNames: ['listener', 'certificate'], registers: [register], collect() {
    this.reset();
    for (const c of src.certificates?.() ?? []) this.set({ listener: c.listener, certificate: c.certificate }, Math.round((c.expiresAt - Date.now()) / 1000));
  } });
  new Gauge({ name: 'shuttle_cluster_circuit_breakers_remaining', help: 'what a circuit breaker still allows across all workers (limit minus open), by priority and resource', labelNames: ['cluster', 'priority', 'resource'], registers: [register], collect() {
    this.reset();
    const field = { connections: 'max_connections', pending_requests: 'max_pending_requests', requests: 'max_requests', retries: 'max_retries' } as const;
    for (const b of src.breakers?.() ?? []) {
      for (const t of b.config.thresholds) {
        for (const resource of BREAKER_RESOURCES) {
          const max = t[field[resource]];
          if (max === undefined) continue;
          this.set({ cluster: b.cluster, priority: t.priority, resource }, Math.max(0, max - src.pool.policy.open(b.id, t.priority, resource)));
        }
      }
    }
  } });
  registerMigrationMetrics(register, src.migration);
  new Gauge({ name: 'shuttle_config_generation', help: 'generation of the running config', registers: [register], collect() {
    this.set(src.info().generation);
  } });
  new Gauge({ name: 'shuttle_build_info', help: 'always 1; labels say which Shuttle and which Node.js run', labelNames: ['version', 'node'], registers: [register] })
    .set({ version: SHUTTLE_VERSION, node: NODE_VERSION }, 1);
  registerRequestMetrics(register, src.requests, () => stats.layout);
  if (src.xds) registerXdsMetrics(register, src.xds);
  registerHealthMetrics(register, src);
  return register;
}

/** Host membership, active-check outcomes and outlier ejections per cluster. */
function registerHealthMetrics(register: Registry, src: MetricsSources): void {
  const { stats, health, healthStats } = src;
  /** The running config's clusters with their stable ids and hosts. */
  const clusters = () => stats.layout.clusters.map((name, i) => {
    const id = stats.layout.clusterIds[i];
    return { name, id, hosts: stats.layout.hosts.filter((h) => h.clusterIndex === id) };
  });
  new Gauge({ name: 'shuttle_cluster_membership_hosts', help: 'hosts in the cluster', labelNames: ['cluster'], registers: [register], collect() {
    this.reset();
    for (const c of clusters()) this.set({ cluster: c.name }, c.hosts.length);
  } });
  new Gauge({ name: 'shuttle_cluster_membership_healthy', help: 'hosts of the cluster that are healthy now (active checks passing, not ejected)', labelNames: ['cluster'], registers: [register], collect() {
    this.reset();
    for (const c of clusters()) this.set({ cluster: c.name }, c.hosts.filter((h) => health.healthy(h.index)).length);
  } });
  const checked = () => clusters().filter((c) => c.hosts[0]?.clusterConfig.health_check !== undefined);
  const hcCounter = (field: 'health_check_attempt' | 'health_check_success' | 'health_check_failure' | 'health_check_network_failure', help: string) => new Counter({
    name: `shuttle_cluster_${field}_total`, help, labelNames: ['cluster'], registers: [register], collect() {
      this.reset();
      for (const c of checked()) this.inc({ cluster: c.name }, healthStats.of(c.id)[field]);
    },
  });
  hcCounter('health_check_attempt', 'active health-check probes made');
  hcCounter('health_check_success', 'probes that passed');
  hcCounter('health_check_failure', 'probes that failed (network failures included)');
  hcCounter('health_check_network_failure', 'probes that got no answer: refused, reset or timed out');
  const detected = () => clusters().filter((c) => c.hosts[0]?.clusterConfig.outlier_detection !== undefined);
  new Counter({ name: 'shuttle_cluster_outlier_detection_ejections_enforced_total', help: 'hosts ejected by outlier detection, by what triggered the ejection', labelNames: ['cluster', 'type'], registers: [register], collect() {
    this.reset();
    for (const c of detected()) for (const type of EJECTION_TYPES) this.inc({ cluster: c.name, type }, healthStats.of(c.id).ejections_enforced[type]);
  } });
  new Counter({ name: 'shuttle_cluster_outlier_detection_ejections_overflow_total', help: 'ejections not made because max_ejection_percent of the cluster was ejected already', labelNames: ['cluster'], registers: [register], collect() {
    this.reset();
    for (const c of detected()) this.inc({ cluster: c.name }, healthStats.of(c.id).ejections_overflow);
  } });
  new Gauge({ name: 'shuttle_cluster_outlier_detection_ejections_active', help: 'hosts of the cluster ejected now', labelNames: ['cluster'], registers: [register], collect() {
    this.reset();
    for (const c of detected()) this.set({ cluster: c.name }, c.hosts.filter((h) => (health.flags(h.index) & HealthFlag.EJECTED) !== 0).length);
  } });
}

/** xDS client metrics: connected, and per resource type updates accepted and rejected, time of the last. */
function registerXdsMetrics(register: Registry, status: () => XdsStatus | undefined): void {
  const types = ['cds', 'eds', 'lds', 'rds', 'sds'] as const;
  new Gauge({ name: 'shuttle_xds_connected', help: '1 while the ADS stream to the control plane is up', registers: [register], collect() {
    this.set(status()?.connected ? 1 : 0);
  } });
  new Counter({ name: 'shuttle_xds_updates_accepted_total', help: 'xDS responses accepted (ACKed), by resource type', labelNames: ['type'], registers: [register], collect() {
    this.reset();
    const s = status();
    for (const t of types) this.inc({ type: t }, s?.types[t].accepted ?? 0);
  } });
  new Counter({ name: 'shuttle_xds_updates_rejected_total', help: 'xDS responses rejected (NACKed), by resource type', labelNames: ['type'], registers: [register], collect() {
    this.reset();
    const s = status();
    for (const t of types) this.inc({ type: t }, s?.types[t].rejected ?? 0);
  } });
  new Gauge({ name: 'shuttle_xds_seconds_since_last_update', help: 'seconds since the last accepted xDS update, by resource type (absent before the first)', labelNames: ['type'], registers: [register], collect() {
    this.reset();
    const s = status();
    for (const t of types) {
      const last = s?.types[t].last_update;
      if (last) this.set({ type: t }, (Date.now() - Date.parse(last)) / 1000);
    }
  } });
}

/** Connection migration in the upgrade that started this process (see upgrade/migration.ts). */
function registerMigrationMetrics(register: Registry, m: MigrationStats | undefined): void {
  if (!m) return;
  new Counter({ name: 'shuttle_upgrade_connections_migrated_total', help: 'connections moved from the process this one upgraded, and served here', registers: [register], collect() {
    this.reset();
    this.inc(m.adopted);
  } });
  new Counter({ name: 'shuttle_upgrade_connections_refused_total', help: 'moved connections this process could not serve (they stayed with the old process)', registers: [register], collect() {
    this.reset();
    this.inc(m.refused);
  } });
  new Counter({ name: 'shuttle_upgrade_connections_drained_total', help: 'connections of the old process that could not move here and drained there, by reason', labelNames: ['reason'], registers: [register], collect() {
    this.reset();
    for (const [reason, n] of Object.entries(m.summary?.fallbacks ?? {})) this.inc({ reason }, n ?? 0);
  } });
  let observed: number[] | undefined;
  new Histogram({ name: 'shuttle_upgrade_connection_migration_seconds', help: 'per moved connection: from the upgrade to this process serving it (waiting for a safe point included)', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers: [register], collect() {
    const seconds = m.summary?.seconds;
    if (seconds === undefined || seconds === observed) return;
    observed = seconds;
    for (const s of seconds) this.observe(s);
  } });
}
