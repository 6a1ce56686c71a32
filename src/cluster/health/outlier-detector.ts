/**
 * Passive health (Envoy's outlier detection), on the main thread: workers report connect failures
 * through their rings; `consecutive_failures` in a row, counted across all workers, eject the host
 * for base_ejection_time × (times ejected), capped at max_ejection_time. A success resets the count.
 */
import type { Logger } from '../../log/logger.ts';
import type { UpstreamEvent } from '../../shared/events.ts';
import { HealthFlag } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { HostHealth } from './host-health.ts';

interface HostOutlierState {
  consecutiveFailures: number;
  ejections: number;
  ejectedUntil: number;
  timer: NodeJS.Timeout | undefined;
}

export class OutlierDetector {
  /** By stable host id. */
  private hosts = new Map<number, HostRef>();
  private readonly health: HostHealth;
  private readonly logger: Logger;
  private readonly state = new Map<number, HostOutlierState>();

  constructor(health: HostHealth, logger: Logger) {
    this.health = health;
    this.logger = logger;
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

  onEvent(event: UpstreamEvent): void {
    const host = this.hosts.get(event.host);
    const od = host?.clusterConfig.outlier_detection;
    if (!host || !od) return;
    let s = this.state.get(event.host);
    if (!s) this.state.set(event.host, (s = { consecutiveFailures: 0, ejections: 0, ejectedUntil: 0, timer: undefined }));
    if (event.type === 'connect_success') {
      s.consecutiveFailures = 0;
      return;
    }
    s.consecutiveFailures++;
    if (s.consecutiveFailures < od.consecutive_failures || s.ejectedUntil > Date.now()) return;

    const clusterHosts = [...this.hosts.values()].filter((h) => h.clusterIndex === host.clusterIndex);
    const ejected = clusterHosts.filter((h) => (this.state.get(h.index)?.ejectedUntil ?? 0) > Date.now()).length;
    const allowed = Math.max(1, Math.floor((clusterHosts.length * od.max_ejection_percent) / 100));
    if (ejected >= allowed) {
      this.logger.warn({ cluster: host.cluster, host: host.address, ejected, allowed }, 'outlier not ejected: max_ejection_percent reached');
      return;
    }
    s.ejections++;
    const duration = Math.min(od.base_ejection_time * s.ejections, od.max_ejection_time);
    s.ejectedUntil = Date.now() + duration;
    s.consecutiveFailures = 0;
    this.health.set(host, HealthFlag.EJECTED, `${od.consecutive_failures} consecutive connect failures; ejected for ${duration}ms`);
    clearTimeout(s.timer);
    const state = s;
    s.timer = setTimeout(() => {
      state.ejectedUntil = 0;
      this.health.clear(host, HealthFlag.EJECTED, 'ejection time over');
    }, duration);
    s.timer.unref();
  }

  stop(): void {
    for (const s of this.state.values()) clearTimeout(s.timer);
  }
}
