/**
 * Events a worker reports to the main thread through its ring (worker → main). Rare by design:
 * a worker reports a connect failure, and a success only right after a failure, so the ring
 * carries state changes, not traffic.
 */
import { MAX_HOSTS } from './directory.ts';
import type { Ring } from './ring.ts';

export type UpstreamEvent =
  | { type: 'connect_failure'; host: number }
  | { type: 'connect_success'; host: number };

export class UpstreamReporter {
  private readonly ring: Ring;
  /** 1 where this worker's last connect to the host failed. */
  private readonly lastFailed: Uint8Array;

  constructor(ring: Ring) {
    this.ring = ring;
    this.lastFailed = new Uint8Array(MAX_HOSTS);
  }

  connectFailed(host: number): void {
    this.lastFailed[host] = 1;
    this.ring.push({ type: 'connect_failure', host } satisfies UpstreamEvent);
  }

  connected(host: number): void {
    if (this.lastFailed[host] === 0) return;
    this.lastFailed[host] = 0;
    this.ring.push({ type: 'connect_success', host } satisfies UpstreamEvent);
  }
}
