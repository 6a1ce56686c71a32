/**
 * The main thread's view of host health: the one writer of the shared health table. The active
 * checker and the outlier detector set and clear their own flag; this keeps each cluster's panic
 * bit in step with how many of its hosts are healthy.
 */
import type { ShuttleConfig } from '../../config/schema.ts';
import { HealthTable } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { Logger } from '../../log/logger.ts';
import { flagNames } from '../../shared/health-table.ts';

export class HostHealth {
  readonly table: HealthTable;
  private readonly hosts: readonly HostRef[];
  private readonly config: ShuttleConfig;
  private readonly logger: Logger;

  constructor(config: ShuttleConfig, hosts: readonly HostRef[], logger: Logger, table?: HealthTable) {
    this.config = config;
    this.hosts = hosts;
    this.logger = logger;
    this.table = table ?? HealthTable.create(hosts.length, config.clusters.length);
  }

  set(host: HostRef, flag: number, reason: string): void {
    const before = this.table.flags(host.index);
    if (before & flag) return;
    this.table.set(host.index, flag);
    this.changed(host, before, reason);
  }

  clear(host: HostRef, flag: number, reason: string): void {
    const before = this.table.flags(host.index);
    if (!(before & flag)) return;
    this.table.clear(host.index, flag);
    this.changed(host, before, reason);
  }

  /** Hosts of a cluster that are healthy now. */
  healthyCount(clusterIndex: number): number {
    return this.hosts.filter((h) => h.clusterIndex === clusterIndex && this.table.healthy(h.index)).length;
  }

  private changed(host: HostRef, before: number, reason: string): void {
    const after = this.table.flags(host.index);
    const total = this.config.clusters[host.clusterIndex].hosts.length;
    const healthy = this.healthyCount(host.clusterIndex);
    const panic = healthy * 100 < total * this.config.clusters[host.clusterIndex].panic_threshold;
    const wasPanic = this.table.panic(host.clusterIndex);
    this.table.setPanic(host.clusterIndex, panic);
    this.logger.info({ cluster: host.cluster, host: host.address, health: after === 0 ? 'healthy' : 'unhealthy', flags: flagNames(after), was: flagNames(before), reason, healthy_hosts: healthy, total_hosts: total }, 'host health changed');
    if (panic !== wasPanic) this.logger.warn({ cluster: host.cluster, healthy_hosts: healthy, total_hosts: total }, panic ? 'cluster in panic: too few healthy hosts, balancing over all' : 'cluster out of panic');
  }
}
