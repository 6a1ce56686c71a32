/**
 * Events a worker reports to the main thread through its ring (worker → main). Rare by design:
 * a worker reports a connect failure, and a success only right after a failure, so the ring
 * carries state changes, not traffic.
 */
import { MAX_HOSTS } from './directory.ts';
import type { HealthTable } from './health-table.ts';
import type { Ring } from './ring.ts';

export type UpstreamEvent =
  | { type: 'connect_failure'; host: number }
  | { type: 'connect_success'; host: number }
  /** A response with status ≥ 500; `gateway`: 502–504, a reset, or gRPC UNAVAILABLE. */
  | { type: 'response_failure'; host: number; gateway: boolean }
  /** A good response while the detector counts the host's failures (once per counting epoch). */
  | { type: 'response_success'; host: number };

export class UpstreamReporter {
  private readonly ring: Ring;
  /** 1 where this worker's last connect to the host failed. */
  private readonly lastFailed: Uint8Array;

  /** The counting epoch this worker reported a success for, per host (see HealthTable). */
  private readonly okEpoch: Int32Array;
  private readonly health: HealthTable | undefined;

  constructor(ring: Ring, health?: HealthTable) {
    this.ring = ring;
    this.health = health;
    this.lastFailed = new Uint8Array(MAX_HOSTS);
    this.okEpoch = new Int32Array(MAX_HOSTS).fill(-1);
  }

  /** A response from the host: failures always; a success only to end a run being counted. */
  responded(host: number, failure: 'none' | '5xx' | 'gateway'): void {
    if (failure !== 'none') {
      this.ring.push({ type: 'response_failure', host, gateway: failure === 'gateway' } satisfies UpstreamEvent);
      return;
    }
    const epoch = this.health?.countingEpoch(host) ?? -1;
    if (epoch < 0 || this.okEpoch[host] === epoch) return;
    this.okEpoch[host] = epoch;
    this.ring.push({ type: 'response_success', host } satisfies UpstreamEvent);
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
