import { formatAddress } from '../config/address.ts';
import type { HostConfig } from '../config/schema.ts';

/**
 * One upstream host as a worker sees it. `activeConnections` is this worker's own count (least
 * connections balances per worker, as MOSN and Envoy do); `healthy` is where health checks and
 * outlier detection plug in.
 */
export class Host {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** "host:port", for logs and stats. */
  readonly address: string;
  activeConnections = 0;
  healthy = true;

  constructor(config: HostConfig) {
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
    this.address = formatAddress(config);
  }
}
