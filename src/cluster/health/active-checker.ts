/**
 * Active health checks, once per process on the main thread (not once per worker): each checked
 * host is probed every `interval` (TCP connect, HTTP GET with expected statuses, or gRPC's
 * grpc.health.v1.Health/Check over h2c answering SERVING), and
 * `unhealthy_threshold` failures / `healthy_threshold` passes in a row flip its shared flag.
 * The first probe's result applies at once, so start-up does not wait for thresholds.
 * On reload, hosts whose check is unchanged keep their probe (no re-probing storm).
 */
import http from 'node:http';
import http2 from 'node:http2';
import { formatAddress } from '../../config/address.ts';
import net from 'node:net';
import type { HealthCheckConfig } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import { HealthFlag } from '../../shared/health-table.ts';
import type { HostRef } from '../../shared/stats-table.ts';
import type { HostHealth } from './host-health.ts';
import { HealthStats, type ProbeOutcome } from './health-stats.ts';

interface Probe {
  host: HostRef;
  readonly check: HealthCheckConfig;
  readonly checkKey: string;
  passes: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

export class ActiveHealthChecker {
  /** By stable host id. */
  private readonly probes = new Map<number, Probe>();
  private readonly health: HostHealth;
  private readonly logger: Logger;
  private readonly stats: HealthStats;

  constructor(health: HostHealth, logger: Logger, stats = new HealthStats()) {
    this.health = health;
    this.logger = logger;
    this.stats = stats;
  }

  /**
   * Makes the probes match `hosts`: new checked hosts get a first probe now (the promise resolves
   * when all first probes are done), removed ones stop, unchanged ones go on as they were.
   */
  async update(hosts: readonly HostRef[]): Promise<void> {
    const wanted = new Map<number, HostRef>();
    for (const h of hosts) if (h.clusterConfig.health_check) wanted.set(h.index, h);
    for (const [id, p] of this.probes) {
      const next = wanted.get(id);
      if (!next || JSON.stringify(next.clusterConfig.health_check) !== p.checkKey) {
        this.stopProbe(p);
        this.probes.delete(id);
        if (!next) this.health.clear(p.host, HealthFlag.FAILED_ACTIVE_HC, 'no longer health-checked');
      } else {
        p.host = next;
      }
    }
    const first: Promise<void>[] = [];
    for (const [id, h] of wanted) {
      if (this.probes.has(id)) continue;
      const check = h.clusterConfig.health_check!;
      const p: Probe = { host: h, check, checkKey: JSON.stringify(check), passes: 0, failures: 0, timer: undefined, stopped: false };
      this.probes.set(id, p);
      first.push(this.probe(p).then((ok) => {
        if (p.stopped) return;
        if (ok) this.health.clear(h, HealthFlag.FAILED_ACTIVE_HC, 'first health check passed');
        else this.health.set(h, HealthFlag.FAILED_ACTIVE_HC, 'first health check failed');
        p.passes = ok ? 1 : 0;
        p.failures = ok ? 0 : 1;
        this.schedule(p);
      }));
    }
    await Promise.all(first);
  }

  /** Probes run so far (for tests and the admin). */
  get size(): number {
    return this.probes.size;
  }

  stop(): void {
    for (const p of this.probes.values()) this.stopProbe(p);
  }

  private stopProbe(p: Probe): void {
    p.stopped = true;
    clearTimeout(p.timer);
  }

  private schedule(p: Probe): void {
    if (p.stopped) return;
    // Up to 10% jitter keeps many checkers from probing in lock-step.
    const delay = p.check.interval * (1 + Math.random() * 0.1);
    p.timer = setTimeout(() => void this.round(p), delay);
    p.timer.unref();
  }

  private async round(p: Probe): Promise<void> {
    const ok = await this.probe(p);
    if (p.stopped) return;
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

  /** Whether the host passed; each outcome is counted for its cluster. */
  private async probe(p: Probe): Promise<boolean> {
    const outcome = p.check.type === 'grpc' ? await this.probeGrpc(p) : p.check.type === 'http' ? await this.probeHttp(p) : await this.probeTcp(p);
    if (!p.stopped) this.stats.probed(p.host.clusterIndex, outcome);
    return outcome === 'success';
  }

  private probeTcp(p: Probe): Promise<ProbeOutcome> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: p.host.host, port: p.host.port });
      const timer = setTimeout(() => done('network_failure'), p.check.timeout);
      const done = (outcome: ProbeOutcome) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(outcome);
      };
      sock.once('connect', () => done('success'));
      sock.once('error', () => done('network_failure'));
    });
  }

  /**
   * grpc.health.v1.Health/Check (grpc/grpc doc/health-checking.md): HealthCheckRequest is one
   * protobuf string field (1: service); HealthCheckResponse one enum field (1: status), SERVING = 1.
   * Off the hot path, so node:http2 does the HTTP/2.
   */
  private probeGrpc(p: Probe): Promise<ProbeOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      const session = http2.connect(`http://${formatAddress({ host: p.host.host, port: p.host.port })}`);
      const done = (outcome: ProbeOutcome, why?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session.destroy();
        if (outcome !== 'success') this.logger.debug({ host: p.host.address, why }, 'health check failed');
        resolve(outcome);
      };
      const timer = setTimeout(() => done('network_failure', 'timeout'), p.check.timeout);
      session.on('error', (err) => done('network_failure', err.message));
      const service = Buffer.from(p.check.service_name, 'utf8');
      const message = service.length > 0 ? Buffer.concat([Buffer.from([0x0a]), varint(service.length), service]) : Buffer.alloc(0);
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      const req = session.request({
        ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', ':authority': p.check.host ?? p.host.address,
        'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'shuttle-health-check',
      });
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      req.on('response', (h) => (grpcStatus = h['grpc-status'] as string | undefined));
      req.on('trailers', (t) => (grpcStatus = t['grpc-status'] as string | undefined));
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('error', (err) => done('network_failure', err.message));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        // One length-prefixed message holding field 1 (varint) = 1 (SERVING).
        const serving = body.length >= 7 && body[0] === 0 && body[5] === 0x08 && body[6] === 0x01;
        done(grpcStatus === '0' && serving ? 'success' : 'failure', `grpc-status ${grpcStatus}, response ${body.toString('hex').slice(0, 40)}`);
      });
      req.end(frame);
    });
  }

  private probeHttp(p: Probe): Promise<ProbeOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: ProbeOutcome, why?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        if (outcome !== 'success') this.logger.debug({ host: p.host.address, why }, 'health check failed');
        resolve(outcome);
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
        done(ok ? 'success' : 'failure', `status ${res.statusCode}`);
      });
      const timer = setTimeout(() => done('network_failure', 'timeout'), p.check.timeout);
      req.once('error', (err) => done('network_failure', err.message));
      req.end();
    });
  }
}
