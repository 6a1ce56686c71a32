/**
 * What the HTTP proxy of one worker shares across its connections: the listener's router, the
 * clusters, one upstream pool per host, retry-budget accounting, telemetry and the logger.
 */
import type { Cluster, ClusterManager } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { ClusterConfig, ListenerConfig, ShuttleConfig as Config } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import type { Router } from '../../router/router.ts';
import { FoundPools, HostPools } from '../../stream/host-pools.ts';
import type { ConnectionLimit, Pool } from '../../layers.ts';
import { C } from '../../shared/stats-table.ts';
import type { UpstreamTls } from '../../net/tls-client.ts';
import { Http1Pool } from '../../stream/http1-pool.ts';
import { Http2Pool } from '../../stream/http2-pool.ts';
import { AutoPool } from '../../stream/auto-pool.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';
import type { HttpFilterChain } from '../../filters/chain.ts';

/** Per-worker, per-cluster counts for Envoy's retry budget. */
export class RetryBudget {
  private readonly active = new Map<Cluster, { requests: number; retries: number }>();

  private entry(cluster: Cluster) {
    let e = this.active.get(cluster);
    if (!e) this.active.set(cluster, (e = { requests: 0, retries: 0 }));
    return e;
  }

  requestStarted(cluster: Cluster): void {
    this.entry(cluster).requests++;
  }

  requestEnded(cluster: Cluster): void {
    this.entry(cluster).requests--;
  }

  /** Takes a retry token if the budget allows; give it back with retryEnded. */
  tryRetry(cluster: Cluster): boolean {
    const e = this.entry(cluster);
    const { budget_percent, min_retry_concurrency } = cluster.config.retry_budget;
    const allowed = Math.max(min_retry_concurrency, Math.floor((e.requests * budget_percent) / 100));
    if (e.retries >= allowed) return false;
    e.retries++;
    return true;
  }

  retryEnded(cluster: Cluster): void {
    this.entry(cluster).retries--;
  }
}

/**
 * HTTP upstream pools, one per upstream host, pool settings and protocol (see HostPools): HTTP/1.1
 * keep-alive pools, or HTTP/2 pools of few multiplexed connections (`protocol: http2`).
 */
export class PoolRegistry {
  private readonly byHost = new HostPools<Pool>();

  /** The pool settings of a cluster config, as a comparable key: computed once per config object. */
  private readonly keys = new WeakMap<object, string>();

  /** The pool settings of a cluster, as a comparable key (TLS files' contents included): once per cluster object. */
  settingsKey(cluster: { config: ClusterConfig; tls?: UpstreamTls }): string {
    let key = this.keys.get(cluster.config);
    if (key === undefined) {
      const config = cluster.config;
      const settings = config.protocol === 'http2' ? config.http2 : config.protocol === 'auto' ? [config.http2, config.connection_pool] : config.connection_pool;
      this.keys.set(config, (key = JSON.stringify([config.protocol, settings, config.connect_timeout, cluster.tls?.key ?? null])));
    }
    return key;
  }

  /** Pools found lately (see FoundPools). */
  private readonly found = new FoundPools<Pool>();

  get(host: Host, cluster: Cluster, telemetry: WorkerTelemetry): Pool {
    let pool = this.found.get(cluster, undefined, host.index);
    if (pool === undefined) {
      pool = this.find(host, cluster, telemetry);
      this.found.set(cluster, undefined, host.index, pool);
    }
    // The breaker of the request's own generation (a pool outlives generations).
    if (pool instanceof Http1Pool) pool.limit = this.connectionLimit(cluster, telemetry);
    return pool;
  }

  drainAll(): void {
    this.found.clear();
    this.byHost.drainAll();
  }

  private find(host: Host, cluster: Cluster, telemetry: WorkerTelemetry): Pool {
    const c = cluster.config;
    const h1 = (tls: UpstreamTls | undefined) => new Http1Pool(host, c.connection_pool, c.connect_timeout, telemetry, tls);
    const h2 = (tls: UpstreamTls | undefined) => new Http2Pool(host, c.http2, c.connect_timeout, telemetry, tls);
    return this.byHost.get(host.index, this.settingsKey(cluster), () =>
      c.protocol === 'http2' ? h2(cluster.tls) : c.protocol === 'auto' ? new AutoPool(host, cluster.tls, c.connect_timeout, telemetry, h1, h2) : h1(cluster.tls));
  }

  private readonly limits = new WeakMap<Cluster, ConnectionLimit | null>();

  /** The cluster's max_connections breaker as pools use it; undefined when it has none. */
  private connectionLimit(cluster: Cluster, telemetry: WorkerTelemetry): ConnectionLimit | undefined {
    const known = this.limits.get(cluster); // (null: known to have none; one lookup per request)
    if (known !== undefined) return known ?? undefined;
    const b = cluster.breakers;
    const limit: ConnectionLimit | undefined = b.limit('default', 'connections') === Infinity ? undefined : {
      acquire: () => b.acquire('default', 'connections'),
      release: () => b.release('default', 'connections'),
      overflowed: () => telemetry.row[telemetry.layout.cluster(cluster.index) + C.upstream_cx_overflow]++,
    };
    this.limits.set(cluster, limit ?? null);
    return limit;
  }

  /** At a reload: keeps the pools the new config still describes (see HostPools.retain). */
  retain(clusters: ClusterManager, hostIds: ReadonlySet<number>): void {
    this.found.clear();
    this.byHost.retain(hostIds, new Set([...clusters.all()].map((c) => this.settingsKey(c))));
  }
}

/** What one config generation gives an HTTP listener; a request keeps the one it started with. */
export interface HttpListenerSnapshot {
  readonly listener: ListenerConfig;
  /** The listener's stable id (its stats cells). */
  readonly listenerIndex: number;
  readonly router: Router;
  readonly clusters: ClusterManager;
  readonly telemetry: WorkerTelemetry;
  /** The listener's http_filters for this generation; undefined when it has none. */
  readonly filters: HttpFilterChain | undefined;
}

export interface HttpProxyContext {
  /** The current generation's view of this listener. */
  snapshot(): HttpListenerSnapshot;
  readonly pools: PoolRegistry;
  readonly retryBudget: RetryBudget;
  readonly logger: Logger;
  /** True once the worker (or this listener) drains: responses carry Connection: close. */
  draining(): boolean;
}
