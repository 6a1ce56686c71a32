/**
 * The admin endpoints. Everything here reads shared state or main-thread state; nothing asks a
 * worker. State-changing endpoints are POST.
 */
import { createHash } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { WorkerPool } from '../acceptor/worker-pool.ts';
import type { ShuttleConfig } from '../config/schema.ts';
import { flagNames, type HealthTable } from '../shared/health-table.ts';
import { workerStateName } from '../shared/load-table.ts';
import { H, type StatsTable } from '../shared/stats-table.ts';
import type { BalanceMode, BoundListener } from '../workers/messages.ts';
import type { AdminServer } from './admin-server.ts';

export interface ReloadInfo {
  attempts: number;
  failures: number;
  lastError: string | null;
}

export interface AdminState {
  phase: () => 'starting' | 'serving' | 'draining';
  config: () => ShuttleConfig;
  generation: () => number;
  reload: () => ReloadInfo;
  listeners: () => BoundListener[];
  balance: BalanceMode;
  pool: WorkerPool;
  stats: StatsTable;
  health: HealthTable;
  metrics: Registry;
}

const SECRET_KEY = /secret|password|passphrase|token|private_?key|credential/i;

/** A copy of the config with the values of secret-looking keys replaced. */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redact(v)]));
  }
  return value;
}

export function configHash(config: ShuttleConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}

export function registerRoutes(admin: AdminServer, s: AdminState): void {
  const metrics = async () => ({ status: 200, body: await s.metrics.metrics(), contentType: s.metrics.contentType });
  admin
    .route('GET', '/live', () => ({ status: 200, body: 'LIVE\n' }))
    .route('GET', '/ready', () => {
      const phase = s.phase();
      return phase === 'serving' ? { status: 200, body: 'READY\n' } : { status: 503, body: `${phase.toUpperCase()}\n` };
    })
    .route('GET', '/metrics', metrics)
    .route('GET', '/stats/prometheus', metrics)
    .route('GET', '/workers', () => ({
      status: 200,
      body: {
        balance: s.balance,
        restarts: s.pool.totalRestarts,
        workers: s.pool.info().map((w) => ({ ...w, state: workerStateName(w.state) })),
      },
    }))
    .route('GET', '/listeners', () => ({ status: 200, body: s.listeners() }))
    .route('GET', '/clusters', () => {
      const layout = s.stats.layout;
      const config = s.config();
      return {
        status: 200,
        body: config.clusters.map((c, ci) => ({
          name: c.name,
          lb_policy: c.lb_policy,
          panic: s.health.panic(layout.clusterIds[ci]),
          health_check: c.health_check ? { type: c.health_check.type, interval_ms: c.health_check.interval } : null,
          outlier_detection: !!c.outlier_detection,
          hosts: layout.hosts.filter((h) => h.clusterIndex === layout.clusterIds[ci]).map((h) => {
            const base = layout.host(h.index);
            const flags = s.health.flags(h.index);
            return {
              address: h.address,
              weight: h.weight,
              health: flags === 0 ? 'healthy' : 'unhealthy',
              flags: flagNames(flags),
              active_connections: s.stats.sum(base + H.upstream_cx_active),
              connections_total: s.stats.sum(base + H.upstream_cx_total),
              connect_failures: s.stats.sum(base + H.upstream_cx_connect_fail),
              requests_total: s.stats.sum(base + H.upstream_rq_total),
              request_errors: s.stats.sum(base + H.upstream_rq_error),
            };
          }),
        })),
      };
    })
    .route('GET', '/config_dump', () => {
      const config = s.config();
      return { status: 200, body: { generation: s.generation(), hash: configHash(config), reload: s.reload(), config: redact(config) } };
    })
    .route('POST', '/workers/:slot/terminate', (params) => {
      const ok = s.pool.terminate(Number(params.slot));
      return ok ? { status: 202, body: { terminated: Number(params.slot) } } : { status: 404, body: { error: `no running worker in slot ${params.slot}` } };
    });
}
