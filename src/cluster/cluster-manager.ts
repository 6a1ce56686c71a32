/**
 * Clusters as one worker sees them: each cluster's hosts and its load balancer, built once from
 * the frozen config snapshot. Worker-local state (per-host connection counts, balancer cursors)
 * lives here; state shared across workers (health, outlier flags) is plugged into `Host`.
 */
import type { ClusterConfig, ShuttleConfig } from '../config/schema.ts';
import { Host } from './host.ts';
import { createLoadBalancer, type LoadBalancer } from './load-balancer.ts';

export class Cluster {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly hosts: readonly Host[];
  readonly lb: LoadBalancer;

  constructor(config: ClusterConfig) {
    this.name = config.name;
    this.config = config;
    this.hosts = config.hosts.map((h) => new Host(h));
    this.lb = createLoadBalancer(config.lb_policy, this.hosts);
  }
}

export class ClusterManager {
  private readonly clusters = new Map<string, Cluster>();

  constructor(config: ShuttleConfig) {
    for (const c of config.clusters) this.clusters.set(c.name, new Cluster(c));
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }
}
