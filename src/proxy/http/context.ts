/**
 * What the HTTP proxy of one worker shares across its connections: the listener's router, the
 * clusters, one upstream pool per host, retry-budget accounting, telemetry and the logger.
 */
import type { Cluster, ClusterManager } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { ListenerConfig } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import type { Router } from '../../router/router.ts';
import { Http1Pool } from '../../stream/http1-pool.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';

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

export class PoolRegistry {
  private readonly pools = new Map<Host, Http1Pool>();
  private readonly telemetry: WorkerTelemetry;

  constructor(telemetry: WorkerTelemetry) {
    this.telemetry = telemetry;
  }

  get(host: Host, cluster: Cluster): Http1Pool {
    let pool = this.pools.get(host);
    if (!pool) this.pools.set(host, (pool = new Http1Pool(host, cluster.config.connection_pool, cluster.config.connect_timeout, this.telemetry)));
    return pool;
  }

  drainAll(): void {
    for (const p of this.pools.values()) p.drain();
  }
}

export interface HttpProxyContext {
  readonly listener: ListenerConfig;
  readonly listenerIndex: number;
  readonly router: Router;
  readonly clusters: ClusterManager;
  readonly pools: PoolRegistry;
  readonly retryBudget: RetryBudget;
  readonly telemetry: WorkerTelemetry;
  readonly logger: Logger;
  /** True once the worker drains: responses carry Connection: close. */
  draining(): boolean;
}
