/**
 * The main thread's view of host health: the one writer of the shared health table. The active
 * checker and the outlier detector set and clear their own flag; this keeps each cluster's panic
 * bit in step with how many of its hosts are healthy.
 */
import { HealthTable } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { Logger } from '../../log/logger.ts';
import { MAX_CLUSTERS, MAX_HOSTS } from '../../shared/directory.ts';
import { flagNames } from '../../shared/health-table.ts';

export class HostHealth {
  readonly table: HealthTable;
  /** Hosts by cluster id: a panic check looks at one cluster's hosts, not at every host. */
  private byCluster = new Map<number, HostRef[]>();
  private readonly logger: Logger;

  constructor(hosts: readonly HostRef[], logger: Logger, table: HealthTable = HealthTable.create(MAX_HOSTS, MAX_CLUSTERS)) {
    this.logger = logger;
    this.table = table;
    this.setHosts(hosts);
  }

  /** A reloaded config's hosts; the flags of hosts that stay are kept where they are. */
  setHosts(hosts: readonly HostRef[]): void {
    this.byCluster = new Map();
    for (const h of hosts) {
      const list = this.byCluster.get(h.clusterIndex);
      if (list) list.push(h);
      else this.byCluster.set(h.clusterIndex, [h]);
    }
    for (const list of this.byCluster.values()) this.updatePanic(list[0]);
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
    let n = 0;
    for (const h of this.byCluster.get(clusterIndex) ?? []) if (this.table.healthy(h.index)) n++;
    return n;
  }

  private changed(host: HostRef, before: number, reason: string): void {
    const after = this.table.flags(host.index);
    this.logger.info({ cluster: host.cluster, host: host.address, health: after === 0 ? 'healthy' : 'unhealthy', flags: flagNames(after), was: flagNames(before), reason }, 'host health changed');
    this.updatePanic(host);
  }

  private updatePanic(host: HostRef): void {
    const total = host.clusterConfig.hosts.length;
    const healthy = this.healthyCount(host.clusterIndex);
    const panic = healthy * 100 < total * host.clusterConfig.panic_threshold;
    if (panic === this.table.panic(host.clusterIndex)) return;
    this.table.setPanic(host.clusterIndex, panic);
    this.logger.warn({ cluster: host.cluster, healthy_hosts: healthy, total_hosts: total }, panic ? 'cluster in panic: too few healthy hosts, balancing over all' : 'cluster out of panic');
  }
}
