/**
 * Passive health (Envoy's outlier detection), on the main thread. Workers report through their
 * rings; a host is ejected for base_ejection_time × (times ejected), capped at max_ejection_time,
 * and never beyond max_ejection_percent of its cluster, when it shows, counted across all workers:
 *
 *   - consecutive_failures local-origin failures in a row (connects refused, timed out, TLS);
 *   - consecutive_5xx responses ≥ 500 in a row (resets and gRPC UNAVAILABLE count);
 *   - consecutive_gateway_failure gateway errors in a row (502–504, resets, gRPC UNAVAILABLE);
 *   - a success rate below the cluster's mean − stdev_factor × stdev (success_rate, read from
 *     the shared request counters every interval).
 *
 * While a run of failures is counted, the host's cell in the health table says so (with an
 * epoch): every worker then reports its next success once, which ends the run, whichever thread
 * saw the failures. Successes are otherwise not reported: the rings carry changes, not traffic.
 */
import type { OutlierDetectionConfig } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import type { UpstreamEvent } from '../../shared/events.ts';
import { HealthFlag } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { HostHealth } from './host-health.ts';
import { HealthStats, type EjectionType } from './health-stats.ts';

interface HostOutlierState {
  localFailures: number;
  failures5xx: number;
  gatewayFailures: number;
  ejections: number;
  ejectedUntil: number;
  timer: NodeJS.Timeout | undefined;
  /** Request and error totals at the last success-rate pass. */
  lastTotal: number;
  lastErrors: number;
}

/** Requests and 5xx responses a host has served so far (summed over workers). */
export type HostCounts = (host: number) => { total: number; errors: number };

export class OutlierDetector {
  /** By stable host id. */
  private hosts = new Map<number, HostRef>();
  private readonly health: HostHealth;
  private readonly logger: Logger;
  private readonly counts: HostCounts | undefined;
  private readonly state = new Map<number, HostOutlierState>();
  private readonly successRateTimer: NodeJS.Timeout;
  /** When each cluster's success rate was last judged (by cluster id). */
  private readonly lastPass = new Map<number, number>();
  private readonly stats: HealthStats;

  constructor(health: HostHealth, logger: Logger, counts?: HostCounts, stats = new HealthStats()) {
    this.health = health;
    this.logger = logger;
    this.counts = counts;
    this.stats = stats;
    this.successRateTimer = setInterval(() => this.successRatePass(), 1_000);
    this.successRateTimer.unref();
  }

  /** A (re)loaded config's hosts: the state of hosts that stay is kept. */
  setHosts(hosts: readonly HostRef[]): void {
    this.hosts = new Map(hosts.map((h) => [h.index, h]));
    for (const [id, s] of this.state) {
      if (this.hosts.has(id)) continue;
      clearTimeout(s.timer);
      this.state.delete(id);
    }
  }

  private stateOf(host: number): HostOutlierState {
    let s = this.state.get(host);
    if (!s) this.state.set(host, (s = { localFailures: 0, failures5xx: 0, gatewayFailures: 0, ejections: 0, ejectedUntil: 0, timer: undefined, lastTotal: 0, lastErrors: 0 }));
    return s;
  }

  onEvent(event: UpstreamEvent): void {
    const host = this.hosts.get(event.host);
    const od = host?.clusterConfig.outlier_detection;
    if (!host || !od) return;
    const s = this.stateOf(event.host);
    switch (event.type) {
      case 'connect_success':
        s.localFailures = 0;
        return this.maybeStopCounting(host, s);
      case 'response_success':
        s.failures5xx = 0;
        s.gatewayFailures = 0;
        return this.maybeStopCounting(host, s);
      case 'connect_failure':
        s.localFailures++;
        this.health.table.startCounting(host.index);
        if (s.localFailures >= od.consecutive_failures) this.eject(host, od, s, 'consecutive_local_origin_failure', `${od.consecutive_failures} consecutive connect failures`);
        return;
      case 'response_failure':
        s.failures5xx++;
        if (event.gateway) s.gatewayFailures++;
        this.health.table.startCounting(host.index);
        if (od.consecutive_5xx !== undefined && s.failures5xx >= od.consecutive_5xx) this.eject(host, od, s, 'consecutive_5xx', `${od.consecutive_5xx} consecutive 5xx responses`);
        else if (od.consecutive_gateway_failure !== undefined && s.gatewayFailures >= od.consecutive_gateway_failure) this.eject(host, od, s, 'consecutive_gateway_failure', `${od.consecutive_gateway_failure} consecutive gateway errors`);
    }
  }

  private maybeStopCounting(host: HostRef, s: HostOutlierState): void {
    if (s.localFailures === 0 && s.failures5xx === 0 && s.gatewayFailures === 0) this.health.table.stopCounting(host.index);
  }

  private eject(host: HostRef, od: OutlierDetectionConfig, s: HostOutlierState, type: EjectionType, why: string): void {
    const now = Date.now();
    if (s.ejectedUntil > now) return;
    const clusterHosts = [...this.hosts.values()].filter((h) => h.clusterIndex === host.clusterIndex);
    const ejected = clusterHosts.filter((h) => (this.state.get(h.index)?.ejectedUntil ?? 0) > now).length;
    const allowed = Math.max(1, Math.floor((clusterHosts.length * od.max_ejection_percent) / 100));
    if (ejected >= allowed) {
      this.stats.ejectionOverflowed(host.clusterIndex);
      this.logger.warn({ cluster: host.cluster, host: host.address, ejected, allowed, reason: why }, 'outlier not ejected: max_ejection_percent reached');
      return;
    }
    s.ejections++;
    this.stats.ejected(host.clusterIndex, type);
    const duration = Math.min(od.base_ejection_time * s.ejections, od.max_ejection_time);
    s.ejectedUntil = now + duration;
    s.localFailures = 0;
    s.failures5xx = 0;
    s.gatewayFailures = 0;
    this.health.table.stopCounting(host.index);
    this.health.set(host, HealthFlag.EJECTED, `${why}; ejected for ${duration}ms`);
    clearTimeout(s.timer);
    const state = s;
    s.timer = setTimeout(() => {
      state.ejectedUntil = 0;
      this.health.clear(host, HealthFlag.EJECTED, 'ejection time over');
    }, duration);
    s.timer.unref();
  }

  /** Success-rate ejection: each cluster that asks for it, every its interval. */
  private successRatePass(): void {
    if (this.counts === undefined) return;
    const now = Date.now();
    const byCluster = new Map<number, HostRef[]>();
    for (const h of this.hosts.values()) {
      const sr = h.clusterConfig.outlier_detection?.success_rate;
      if (sr === undefined) continue;
      if (now - (this.lastPass.get(h.clusterIndex) ?? 0) < sr.interval) continue;
      let list = byCluster.get(h.clusterIndex);
      if (!list) byCluster.set(h.clusterIndex, (list = []));
      list.push(h);
    }
    for (const [cluster, hosts] of byCluster) {
      this.lastPass.set(cluster, now);
      const od = hosts[0].clusterConfig.outlier_detection!;
      const sr = od.success_rate!;
      const rates: { host: HostRef; rate: number }[] = [];
      for (const h of hosts) {
        const s = this.stateOf(h.index);
        const { total, errors } = this.counts(h.index);
        const volume = total - s.lastTotal;
        const failed = errors - s.lastErrors;
        s.lastTotal = total;
        s.lastErrors = errors;
        if (volume >= sr.request_volume) rates.push({ host: h, rate: (volume - failed) / volume });
      }
      if (rates.length < sr.minimum_hosts) continue;
      const mean = rates.reduce((n, r) => n + r.rate, 0) / rates.length;
      const stdev = Math.sqrt(rates.reduce((n, r) => n + (r.rate - mean) ** 2, 0) / rates.length);
      const threshold = mean - sr.stdev_factor * stdev;
      for (const r of rates) {
        if (r.rate < threshold) this.eject(r.host, od, this.stateOf(r.host.index), 'success_rate', `success rate ${(r.rate * 100).toFixed(1)}% below the cluster's threshold ${(threshold * 100).toFixed(1)}%`);
      }
    }
  }

  stop(): void {
    clearInterval(this.successRateTimer);
    for (const s of this.state.values()) clearTimeout(s.timer);
  }
}
