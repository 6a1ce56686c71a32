/**
 * What the main thread's health checking did, per cluster (by stable id): active-check outcomes
 * and outlier ejections (Envoy's health_check.* and outlier_detection.* stats). Both run on the
 * main thread only, so these are plain counters read by the admin; no shared memory is needed.
 */
export const EJECTION_TYPES = ['consecutive_local_origin_failure', 'consecutive_5xx', 'consecutive_gateway_failure', 'success_rate'] as const;
export type EjectionType = (typeof EJECTION_TYPES)[number];

/** success: the probe passed; failure: it got an answer that fails (status, NOT_SERVING); network_failure: no answer (refused, reset, timed out). */
export type ProbeOutcome = 'success' | 'failure' | 'network_failure';

export interface ClusterHealthCounts {
  health_check_attempt: number;
  health_check_success: number;
  /** Every failed probe, network failures included (as Envoy counts). */
  health_check_failure: number;
  health_check_network_failure: number;
  ejections_enforced: Record<EjectionType, number>;
  /** Ejections not made because max_ejection_percent of the cluster was ejected already. */
  ejections_overflow: number;
}

export class HealthStats {
  private readonly clusters = new Map<number, ClusterHealthCounts>();

  of(cluster: number): ClusterHealthCounts {
    let c = this.clusters.get(cluster);
    if (!c) {
      c = {
        health_check_attempt: 0, health_check_success: 0, health_check_failure: 0, health_check_network_failure: 0,
        ejections_enforced: { consecutive_local_origin_failure: 0, consecutive_5xx: 0, consecutive_gateway_failure: 0, success_rate: 0 },
        ejections_overflow: 0,
      };
      this.clusters.set(cluster, c);
    }
    return c;
  }

  probed(cluster: number, outcome: ProbeOutcome): void {
    const c = this.of(cluster);
    c.health_check_attempt++;
    if (outcome === 'success') c.health_check_success++;
    else c.health_check_failure++;
    if (outcome === 'network_failure') c.health_check_network_failure++;
  }

  ejected(cluster: number, type: EjectionType): void {
    this.of(cluster).ejections_enforced[type]++;
  }

  ejectionOverflowed(cluster: number): void {
    this.of(cluster).ejections_overflow++;
  }
}
