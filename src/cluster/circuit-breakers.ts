/**
 * A cluster's circuit breakers (Envoy's): at most so many connections, pending requests (waiting
 * for a connection), active requests and active retries, per priority, counted across every
 * worker thread of the process through the policy table's shared counts. A request that would
 * exceed one is answered at once (503 / UNAVAILABLE / the RPC busy status, flag UO) instead of
 * queueing without bound behind a struggling upstream.
 */
import type { CircuitBreakersConfig } from '../config/schema.ts';
import type { BreakerResource, PolicyTable, Priority } from '../filters/shared/policy-table.ts';

export type { Priority };

/** What acquire did: refused, counted (release it later), or free (no limit: nothing to release). */
export type Acquired = 'refused' | 'counted' | 'free';

const NO_LIMITS: Record<BreakerResource, number> = { connections: Infinity, pending_requests: Infinity, requests: Infinity, retries: Infinity };

export class CircuitBreakers {
  private readonly policy: PolicyTable | undefined;
  private readonly cluster: number;
  private readonly limits: Record<Priority, Record<BreakerResource, number>>;

  constructor(config: CircuitBreakersConfig | undefined, cluster: number, policy: PolicyTable | undefined) {
    this.cluster = cluster;
    this.policy = policy;
    this.limits = { default: NO_LIMITS, high: NO_LIMITS };
    for (const t of config?.thresholds ?? []) {
      this.limits[t.priority] = {
        connections: t.max_connections ?? Infinity,
        pending_requests: t.max_pending_requests ?? Infinity,
        requests: t.max_requests ?? Infinity,
        retries: t.max_retries ?? Infinity,
      };
    }
  }

  limit(priority: Priority, resource: BreakerResource): number {
    return this.limits[priority][resource];
  }

  acquire(priority: Priority, resource: BreakerResource): Acquired {
    const max = this.limits[priority][resource];
    if (max === Infinity || this.policy === undefined) return 'free';
    return this.policy.acquire(this.cluster, priority, resource, max) ? 'counted' : 'refused';
  }

  release(priority: Priority, resource: BreakerResource): void {
    this.policy?.release(this.cluster, priority, resource);
  }
}
