/**
 * The main thread of a running Shuttle: loads the config, builds the shared plane, starts the
 * workers, runs health checks, binds the listeners, serves the admin API, and turns signals into
 * drains.
 *
 *   start: config ─▶ shared plane ─▶ admin (/live) ─▶ workers ready ─▶ first health-check round
 *          ─▶ listeners bound ─▶ /ready = 200
 *   stop:  SIGTERM ─▶ /ready = 503, stop accepting ─▶ workers drain (deadline) ─▶ exit 0
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { Acceptor } from './acceptor/acceptor.ts';
import { WorkerPool } from './acceptor/worker-pool.ts';
import { AdminServer } from './admin/admin-server.ts';
import { createMetricsRegistry } from './admin/metrics.ts';
import { configHash, registerRoutes } from './admin/routes.ts';
import { ActiveHealthChecker } from './cluster/health/active-checker.ts';
import { HostHealth } from './cluster/health/host-health.ts';
import { OutlierDetector } from './cluster/health/outlier-detector.ts';
import type { LogLevel, ShuttleConfig } from './config/schema.ts';
import { createLogger, type Logger } from './log/logger.ts';
import { StatsLayout, StatsTable } from './shared/stats-table.ts';
import type { BalanceMode, BoundListener } from './workers/messages.ts';

export interface StartOptions {
  config: ShuttleConfig;
  configFile: string;
  threads: number;
  balance: BalanceMode;
  logLevel?: LogLevel;
  pidFile?: string;
}

type Phase = 'starting' | 'serving' | 'draining';

export async function startServer(opts: StartOptions): Promise<void> {
  const { config } = opts;
  const logLevel = opts.logLevel ?? config.log.level;
  const { logger, flush, flushSync } = createLogger({ level: logLevel });
  let phase: Phase = 'starting';
  const generation = 1;

  if (opts.balance === 'reuseport') {
    const unfixed = config.listeners.filter((l) => l.address.port === 0).map((l) => l.name);
    // Each worker binds its own socket; port 0 would give every worker a different port.
    if (unfixed.length > 0) throw new Error(`--balance reuseport needs a fixed port on every listener (port 0 on: ${unfixed.join(', ')})`);
  }

  // The shared plane: counters, host health, per-worker load and event rings.
  const layout = new StatsLayout(config);
  const stats = StatsTable.create(layout, opts.threads);
  const health = new HostHealth(config, layout.hosts, logger);
  const outliers = new OutlierDetector(config, layout.hosts, health, logger);
  const checker = new ActiveHealthChecker(config, layout.hosts, health, logger);

  const pool = new WorkerPool({
    threads: opts.threads, config, balance: opts.balance, logLevel, logger,
    stats, health: health.table, onEvent: (e) => outliers.onEvent(e),
  });
  const acceptor = new Acceptor(pool, logger);
  let listeners: BoundListener[] = [];

  const admin = new AdminServer(logger);
  registerRoutes(admin, {
    phase: () => phase,
    config: () => config,
    generation: () => generation,
    listeners: () => listeners,
    balance: opts.balance,
    pool,
    stats,
    health: health.table,
    metrics: createMetricsRegistry({ stats, health: health.table, pool, info: () => ({ generation }) }),
  });

  const fail = (err: unknown, what: string): never => {
    logger.fatal({ err }, what);
    pool.terminateAll();
    flushSync();
    process.exit(1);
  };

  const adminAddress = await admin.listen(config.admin.address).catch((err) => fail(err, 'admin server could not listen'));
  logger.info({ address: adminAddress }, 'admin listening');

  const bound = await pool.start().catch((err) => fail(err, 'workers failed to start'));
  await checker.start();
  if (opts.balance === 'reuseport') {
    listeners = bound[0];
  } else {
    for (const l of config.listeners) {
      listeners.push(await acceptor.listen(l).catch((err) => fail(err, `listener ${l.name} could not bind ${l.address.host}:${l.address.port}`)));
    }
  }

  if (opts.pidFile) writeFileSync(opts.pidFile, `${process.pid}\n`);
  phase = 'serving';
  logger.info({ listeners, admin: adminAddress, threads: opts.threads, balance: opts.balance, config: opts.configFile, generation, hash: configHash(config) }, 'shuttle ready');

  let stopSignals = 0;
  const stop = async (signal: NodeJS.Signals) => {
    if (++stopSignals > 1) {
      logger.warn({ signal }, 'second stop signal: exiting now');
      pool.terminateAll();
      flushSync();
      process.exit(1);
    }
    phase = 'draining';
    logger.info({ signal, drain_timeout_ms: config.drain_timeout }, 'draining: no new connections; open ones may finish');
    acceptor.close();
    checker.stop();
    outliers.stop();
    await pool.drain(config.drain_timeout);
    await admin.close();
    if (opts.pidFile) removePidFile(opts.pidFile, logger);
    logger.info('stopped');
    await flush();
    process.exit(0);
  };
  process.on('SIGTERM', (s) => void stop(s));
  process.on('SIGINT', (s) => void stop(s));
}

/** Removes the pid file only if it still names this process (a successor may own it). */
function removePidFile(path: string, logger: Logger): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
  } catch (err) {
    logger.debug({ err }, 'pid file not removed');
  }
}
