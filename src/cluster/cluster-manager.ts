/**
 * Clusters as one worker sees them: each cluster's hosts and its load balancer, built once from
 * the frozen config snapshot. Worker-local state (per-host connection counts, balancer cursors)
 * lives here; state shared across workers (health, ejection, panic) is read from the health table.
 */
import type { ClusterConfig, ShuttleConfig } from '../config/schema.ts';
import type { HealthTable } from '../shared/health-table.ts';
import { Host } from './host.ts';
import { createLoadBalancer, type LoadBalancer } from './load-balancer.ts';

export class Cluster {
  readonly name: string;
  readonly index: number;
  readonly config: ClusterConfig;
  readonly hosts: readonly Host[];
  readonly lb: LoadBalancer;

  constructor(config: ClusterConfig, index: number, firstHostIndex: number, health?: HealthTable) {
    this.name = config.name;
    this.index = index;
    this.config = config;
    this.hosts = config.hosts.map((h, i) => new Host(h, firstHostIndex + i, index, health));
    this.lb = createLoadBalancer(config.lb_policy, this.hosts);
  }
}

export class ClusterManager {
  private readonly clusters = new Map<string, Cluster>();

  constructor(config: ShuttleConfig, health?: HealthTable) {
    let hostIndex = 0;
    config.clusters.forEach((c, i) => {
      this.clusters.set(c.name, new Cluster(c, i, hostIndex, health));
      hostIndex += c.hosts.length;
    });
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }
}
