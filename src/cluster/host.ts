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
  /** "host:port", for logs and stats. */
  readonly address: string;
  /** Index among all hosts of all clusters (config order): its row in the shared tables. */
  readonly index: number;
  readonly clusterIndex: number;
  activeConnections = 0;
  private readonly health: HealthTable | undefined;

  constructor(config: HostConfig, index = 0, clusterIndex = 0, health?: HealthTable) {
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
    this.address = formatAddress(config);
    this.index = index;
    this.clusterIndex = clusterIndex;
    this.health = health;
  }

  get healthy(): boolean {
    return this.health ? this.health.healthy(this.index) : true;
  }

  /** Eligible for new traffic: healthy, or its cluster is in panic (then every host is). */
  get available(): boolean {
    return this.healthy || (this.health?.panic(this.clusterIndex) ?? false);
  }
}
