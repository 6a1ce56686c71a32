/**
 * Active health checks, once per process on the main thread (not once per worker): each checked
 * host is probed every `interval` (TCP connect, or HTTP GET with expected statuses), and
 * `unhealthy_threshold` failures / `healthy_threshold` passes in a row flip its shared flag.
 * The first probe's result applies at once, so start-up does not wait for thresholds.
 */
import http from 'node:http';
import net from 'node:net';
import type { HealthCheckConfig, ShuttleConfig } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import { HealthFlag } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { HostHealth } from './host-health.ts';

interface Probe {
  readonly host: HostRef;
  readonly check: HealthCheckConfig;
  passes: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

export class ActiveHealthChecker {
  private readonly probes: Probe[] = [];
  private readonly health: HostHealth;
  private readonly logger: Logger;
  private stopped = false;

  constructor(config: ShuttleConfig, hosts: readonly HostRef[], health: HostHealth, logger: Logger) {
    this.health = health;
    this.logger = logger;
    for (const ref of hosts) {
      const cluster = config.clusters[ref.clusterIndex];
      if (!cluster.health_check) continue;
      this.probes.push({ host: ref, check: cluster.health_check, passes: 0, failures: 0, timer: undefined });
    }
  }

  /** Runs the first round of probes (resolves when every host has a first result), then keeps going. */
  async start(): Promise<void> {
    await Promise.all(this.probes.map(async (p) => {
      const ok = await this.probe(p);
      if (!ok) this.health.set(p.host, HealthFlag.FAILED_ACTIVE_HC, 'first health check failed');
      p.passes = ok ? 1 : 0;
      p.failures = ok ? 0 : 1;
      this.schedule(p);
    }));
  }

  stop(): void {
    this.stopped = true;
    for (const p of this.probes) clearTimeout(p.timer);
  }

  private schedule(p: Probe): void {
    if (this.stopped) return;
    // Up to 10% jitter keeps many checkers from probing in lock-step.
    const delay = p.check.interval * (1 + Math.random() * 0.1);
    p.timer = setTimeout(() => void this.round(p), delay);
    p.timer.unref();
  }

  private async round(p: Probe): Promise<void> {
    const ok = await this.probe(p);
    if (this.stopped) return;
    if (ok) {
      p.passes++;
      p.failures = 0;
      if (p.passes >= p.check.healthy_threshold) this.health.clear(p.host, HealthFlag.FAILED_ACTIVE_HC, `passed ${p.passes} health checks in a row`);
    } else {
      p.failures++;
      p.passes = 0;
      if (p.failures >= p.check.unhealthy_threshold) this.health.set(p.host, HealthFlag.FAILED_ACTIVE_HC, `failed ${p.failures} health checks in a row`);
    }
    this.schedule(p);
  }

  private probe(p: Probe): Promise<boolean> {
    return p.check.type === 'http' ? this.probeHttp(p) : this.probeTcp(p);
  }

  private probeTcp(p: Probe): Promise<boolean> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: p.host.host, port: p.host.port });
      const timer = setTimeout(() => done(false), p.check.timeout);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(ok);
      };
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
    });
  }

  private probeHttp(p: Probe): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (ok: boolean, why?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        if (!ok) this.logger.debug({ host: p.host.address, why }, 'health check failed');
        resolve(ok);
      };
      const req = http.request({
        host: p.host.host,
        port: p.host.port,
        path: p.check.path,
        method: 'GET',
        agent: false,
        headers: { host: p.check.host ?? p.host.address, 'user-agent': 'shuttle-health-check', connection: 'close' },
      }, (res) => {
        const ok = p.check.expected_statuses.includes(res.statusCode ?? 0);
        res.resume();
        done(ok, `status ${res.statusCode}`);
      });
      const timer = setTimeout(() => done(false, 'timeout'), p.check.timeout);
      req.once('error', (err) => done(false, err.message));
      req.end();
    });
  }
}
