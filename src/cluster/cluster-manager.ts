/**
 * Clusters as one worker sees them: each cluster's hosts and its load balancer, built once from
 * the frozen config snapshot. Worker-local state (per-host connection counts, balancer cursors)
 * lives here; state shared across workers (health, ejection, panic) is read from the health table.
 */
import type { ClusterConfig, ShuttleConfig } from '../config/schema.ts';
import type { Secrets } from '../config/secrets.ts';
import { upstreamTls, type UpstreamTls } from '../net/tls-client.ts';
import { MAX_HOSTS, positionalIds, type EntityIds } from '../shared/directory.ts';
import type { HealthTable } from '../shared/health-table.ts';
import type { PolicyTable } from '../filters/shared/policy-table.ts';
import { CircuitBreakers } from './circuit-breakers.ts';
import { Host } from './host.ts';
import type { LoadBalancer } from './load-balancer.ts';
import { balancerFor } from './priority-lb.ts';

export class Cluster {
  readonly name: string;
  readonly index: number;
  readonly config: ClusterConfig;
  readonly hosts: readonly Host[];
  readonly lb: LoadBalancer;
  /** TLS to the hosts (the cluster's `tls`, with its files read). */
  readonly tls: UpstreamTls | undefined;
  readonly breakers: CircuitBreakers;

  /** `index` and `hostIds` are stable ids (see Directory): cells in the shared tables. */
  constructor(config: ClusterConfig, index: number, hostIds: readonly number[], health?: HealthTable, load?: Int32Array, secrets: Secrets = {}, policy?: PolicyTable) {
    this.name = config.name;
    this.index = index;
    this.config = config;
    this.hosts = config.hosts.map((h, i) => new Host(h, hostIds[i], index, health, load));
    this.lb = balancerFor(config, this.hosts);
    this.tls = config.tls ? upstreamTls(config.tls, secrets) : undefined;
    this.breakers = new CircuitBreakers(config.circuit_breakers, index, policy);
  }
}

export class ClusterManager {
  private readonly clusters = new Map<string, Cluster>();

  /** `load`: per-worker connection counts by host id, kept across reloads (least connections). */
  constructor(config: ShuttleConfig, health?: HealthTable, ids: EntityIds = positionalIds(config), load: Int32Array = new Int32Array(MAX_HOSTS), secrets: Secrets = {}, policy?: PolicyTable) {
    config.clusters.forEach((c, i) => this.clusters.set(c.name, new Cluster(c, ids.clusters[i], ids.hosts[i], health, load, secrets, policy)));
  }

  /**
   * An endpoint update: the cluster of that name is replaced by one with the new hosts. Requests
   * under way keep the Cluster they chose from; new ones see the new hosts.
   */
  replace(cluster: Cluster): void {
    this.clusters.set(cluster.name, cluster);
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }
}
