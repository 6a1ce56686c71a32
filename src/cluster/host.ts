import { formatAddress } from '../config/address.ts';
import type { HostConfig } from '../config/schema.ts';
import type { HealthTable } from '../shared/health-table.ts';

/**
 * One upstream host as a worker sees it. `activeConnections` is this worker's own count (least
 * connections balances per worker, as MOSN and Envoy do). Health is read from the shared health
 * table, written by the main thread's health checker and outlier detector.
 */
export class Host {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Failover level (0 serves first; see priority-lb.ts). */
  readonly priority: number;
  /** "host:port", for logs and stats. */
  readonly address: string;
  /** Index among all hosts of all clusters (config order): its row in the shared tables. */
  readonly index: number;
  readonly clusterIndex: number;
  private readonly health: HealthTable | undefined;
  /** This worker's connection counts by host id, shared by every config generation. */
  private readonly load: Int32Array;

  constructor(config: HostConfig, index = 0, clusterIndex = 0, health?: HealthTable, load: Int32Array = new Int32Array(index + 1)) {
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
    this.priority = config.priority ?? 0;
    this.address = formatAddress(config);
    this.index = index;
    this.clusterIndex = clusterIndex;
    this.health = health;
    this.load = load;
  }

  /** This worker's open (and opening) connections to the host. */
  get activeConnections(): number {
    return this.load[this.index];
  }

  set activeConnections(n: number) {
    this.load[this.index] = n;
  }

  get healthy(): boolean {
    return this.health ? this.health.healthy(this.index) : true;
  }

  /** Eligible for new traffic: healthy, or its cluster is in panic (then every host is). */
  get available(): boolean {
    return this.healthy || (this.health?.panic(this.clusterIndex) ?? false);
  }
}
