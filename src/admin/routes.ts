/**
 * The admin endpoints. Everything here reads shared state or main-thread state; nothing asks a
 * worker. State-changing endpoints are POST. JSON answers use snake_case keys throughout.
 */
import type { Registry } from 'prom-client';
import YAML from 'yaml';
import type { WorkerPool } from '../acceptor/worker-pool.ts';
import type { ShuttleConfig } from '../config/schema.ts';
import { LOG_LEVELS } from '../config/schema.ts';
import type { LogLevels } from '../log/levels.ts';
import type { XdsStatus } from '../xds/xds-manager.ts';
import type { Logger } from '../log/logger.ts';
import { flagNames, type HealthTable } from '../shared/health-table.ts';
import { workerStateName } from '../shared/load-table.ts';
import type { RequestTable } from '../shared/request-table.ts';
import { H, type StatsTable } from '../shared/stats-table.ts';
import type { BalanceMode, BoundListener } from '../workers/messages.ts';
import type { AdminServer } from './admin-server.ts';
import { configForDump, formatDuration } from './config-dump.ts';
import { registerDashboard } from './dashboard/dashboard.ts';
import { configHash, serverInfo, type ProcessFacts } from './server-info.ts';

export { redact } from './config-dump.ts';
export { configHash } from './server-info.ts';

export interface ReloadInfo {
  attempts: number;
  failures: number;
  /** The last attempt: when, whether it was applied, why not. */
  last_time: string | null;
  last_ok: boolean | null;
  last_error: string | null;
}

export interface UpgradeInfo {
  /** This process took over from that one (an in-place upgrade), or null. */
  upgraded_from_pid: number | null;
  attempts: number;
  /** This process's last attempt to upgrade itself. */
  last: { time: string; ok: boolean; new_pid: number | null; error: string | null } | null;
}

export type Phase = 'starting' | 'serving' | 'draining';

export interface AdminState {
  phase: () => Phase;
  /** /healthcheck/fail: /ready answers 503 until /healthcheck/ok. */
  healthCheckFailed: () => boolean;
  setHealthCheckFailed: (failed: boolean) => void;
  /** Stops accepting and drains open connections; the process (and this admin) stays up. */
  drainListeners: () => void;
  config: () => ShuttleConfig;
  configFile: string;
  generation: () => number;
  reload: () => ReloadInfo;
  upgrade: () => UpgradeInfo;
  listeners: () => BoundListener[];
  balance: BalanceMode;
  threads: () => number;
  pool: WorkerPool;
  stats: StatsTable;
  requests: RequestTable;
  health: HealthTable;
  metrics: Registry;
  /** Started with --bootstrap: the xDS client's state (versions, last NACK per type). */
  xds?: () => XdsStatus | undefined;
  /** Started with --bootstrap: true until the first complete xDS config serves (/ready: 503 INITIALIZING). */
  xdsInitializing?: () => boolean;
  logLevels: LogLevels;
  logger: Logger;
}

/** Query parameters of an admin request, bounded (a hostile client gets a 400, not a big object). */
function queryOf(url: string | undefined): Record<string, string> {
  const q = (url ?? '').split('?')[1] ?? '';
  const params = new URLSearchParams(q.slice(0, 2048));
  return Object.fromEntries([...params].slice(0, 16));
}

export function registerRoutes(admin: AdminServer, s: AdminState, facts: ProcessFacts): void {
  const metrics = async () => ({ status: 200, body: await s.metrics.metrics(), contentType: s.metrics.contentType });
  admin
    .route('GET', '/help', () => ({ status: 200, body: helpText(admin) }), 'this list')
    .route('GET', '/live', () => ({ status: 200, body: 'LIVE\n' }), '200 LIVE while the process runs')
    .route('GET', '/ready', () => {
      const phase = s.phase();
      if (phase !== 'serving') return { status: 503, body: `${phase.toUpperCase()}\n` };
      if (s.xdsInitializing?.()) return { status: 503, body: 'INITIALIZING\n' };
      return s.healthCheckFailed() ? { status: 503, body: 'HEALTHCHECK_FAILED\n' } : { status: 200, body: 'READY\n' };
    }, '200 READY when serving; 503 STARTING, DRAINING or HEALTHCHECK_FAILED otherwise (for load balancers)')
    .route('POST', '/healthcheck/fail', () => {
      if (!s.healthCheckFailed()) s.logger.warn('health check failed by the admin (/healthcheck/fail): /ready answers 503');
      s.setHealthCheckFailed(true);
      return { status: 200, body: { health_check_failed: true } };
    }, 'make /ready answer 503 (take this proxy out of a load balancer before maintenance); it keeps serving')
    .route('POST', '/healthcheck/ok', () => {
      if (s.healthCheckFailed()) s.logger.info('health check restored by the admin (/healthcheck/ok)');
      s.setHealthCheckFailed(false);
      return { status: 200, body: { health_check_failed: false } };
    }, 'undo /healthcheck/fail')
    .route('POST', '/drain_listeners', () => {
      const already = s.phase() === 'draining';
      if (!already) s.drainListeners();
      return { status: 202, body: { state: 'draining', already_draining: already, drain_timeout: formatDuration(s.config().drain_timeout) } };
    }, 'stop accepting connections and drain the open ones (within drain_timeout); the process and this admin stay up until SIGTERM')
    .route('GET', '/server_info', () => ({ status: 200, body: serverInfo(s, facts) }), 'version, state, uptime, command line, hot-restart generation, config generation, last reload and upgrade')
    .route('GET', '/metrics', metrics, 'Prometheus text (every metric is listed in docs/admin.md)')
    .route('GET', '/stats/prometheus', metrics, 'the same, at Envoy\'s path')
    .route('GET', '/logging', () => ({ status: 200, body: logging(s) }), 'log level of each logger (main, workers)')
    .route('POST', '/logging', (_p, req) => {
      const changes = queryOf(req.url);
      if (Object.keys(changes).length === 0) return { status: 400, body: { error: 'give ?level=LEVEL (every logger) or ?LOGGER=LEVEL', ...logging(s) } };
      const problems = s.logLevels.apply(changes);
      if (problems.length > 0) return { status: 400, body: { error: problems.join('; '), ...logging(s) } };
      s.logger.info({ changes, loggers: s.logLevels.levels() }, 'log levels changed by the admin');
      return { status: 200, body: logging(s) };
    }, 'change log levels at runtime: ?level=debug (all) or ?workers=debug&main=info')
    .route('GET', '/workers', () => ({
      status: 200,
      body: {
        balance: s.balance,
        restarts: s.pool.totalRestarts,
        workers: s.pool.info().map((w) => ({
          slot: w.slot,
          state: workerStateName(w.state),
          worker_id: w.workerId,
          thread_id: w.threadId,
          active_connections: w.activeConnections,
          total_connections: w.totalConnections,
          active_streams: w.activeStreams,
          restarts: w.restarts,
          event_loop_utilization: w.eventLoopUtilization,
          ring_dropped_events: w.droppedEvents,
        })),
      },
    }), 'worker threads: state, connections, streams, restarts, event-loop utilisation')
    .route('GET', '/listeners', () => ({ status: 200, body: s.listeners() }), 'bound listeners and their addresses')
    .route('GET', '/clusters', () => {
      const layout = s.stats.layout;
      const config = s.config();
      return {
        status: 200,
        body: config.clusters.map((c, ci) => ({
          name: c.name,
          lb_policy: c.lb_policy,
          panic: s.health.panic(layout.clusterIds[ci]),
          health_check: c.health_check ? { type: c.health_check.type, interval: formatDuration(c.health_check.interval) } : null,
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
    }, 'clusters and hosts: health, ejection, connections, requests')
    .route('GET', '/config_dump', (_p, req) => {
      const config = s.config();
      const dump = configForDump(config, s.configFile);
      if (queryOf(req.url).format === 'yaml') {
        const head = `# Shuttle config generation ${s.generation()} (hash ${configHash(config)}), dumped ${new Date().toISOString()}\n`;
        return { status: 200, body: head + YAML.stringify(dump), contentType: 'application/yaml; charset=utf-8' };
      }
      return { status: 200, body: { generation: s.generation(), hash: configHash(config), config_file: s.configFile, reload: s.reload(), ...(s.xds ? { xds: s.xds() ?? null } : {}), config: dump } };
    }, 'the running config in the config file\'s shape (feed it to shuttle validate); ?format=yaml for the config alone as YAML; with --bootstrap, xds: each resource\'s version, last update and the last NACK per type')
    .route('POST', '/workers/:slot/terminate', (params) => {
      const ok = s.pool.terminate(Number(params.slot));
      return ok ? { status: 202, body: { terminated: Number(params.slot) } } : { status: 404, body: { error: `no running worker in slot ${params.slot}` } };
    }, 'end a worker abruptly, as a crash would (it is replaced)');
  registerDashboard(admin, s, facts);
}

function logging(s: AdminState): { loggers: Record<string, string>; levels: readonly string[] } {
  return { loggers: s.logLevels.levels(), levels: LOG_LEVELS };
}

function helpText(admin: AdminServer): string {
  const endpoints = admin.endpoints();
  const width = Math.max(...endpoints.map((e) => e.method.length + 1 + e.path.length));
  const lines = endpoints.map((e) => `  ${`${e.method} ${e.path}`.padEnd(width)}  ${e.help}`);
  return `Shuttle admin API. GET reads; POST changes state (send no body, or JSON).\n\n${lines.join('\n')}\n`;
}
