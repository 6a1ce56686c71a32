/**
 * The main thread of a running Shuttle: loads the config, builds the shared plane, starts the
 * workers, runs health checks, binds the listeners, serves the admin API, and turns signals into
 * reloads and drains.
 *
 *   start:  config ─▶ shared plane ─▶ admin (/live) ─▶ workers ready ─▶ first health-check round
 *           ─▶ listeners bound ─▶ /ready = 200
 *   SIGHUP: parse + validate + diff on a piscina thread ─▶ invalid: keep serving, report
 *           ─▶ valid: close removed listeners ─▶ workers apply the new generation ─▶ bind new
 *              listeners ─▶ health checks follow the new hosts ─▶ report generation + hash
 *   stop:   SIGTERM ─▶ /ready = 503, stop accepting ─▶ workers drain (deadline) ─▶ exit 0
 */
import { readFileSync, unlinkSync } from 'node:fs';
import type net from 'node:net';
import type { SocketAddress } from './config/address.ts';
import { Piscina } from 'piscina';
import { Acceptor } from './acceptor/acceptor.ts';
import { WorkerPool, type PoolWorker } from './acceptor/worker-pool.ts';
import { AdminServer } from './admin/admin-server.ts';
import { createMetricsRegistry } from './admin/metrics.ts';
import { configHash, registerRoutes, type Phase, type ReloadInfo, type UpgradeInfo } from './admin/routes.ts';
import { processFacts } from './admin/server-info.ts';
import { LogLevels } from './log/levels.ts';
import { ActiveHealthChecker } from './cluster/health/active-checker.ts';
import { HostHealth } from './cluster/health/host-health.ts';
import { OutlierDetector } from './cluster/health/outlier-detector.ts';
import { deepFreeze, formatProblem } from './config/load.ts';
import type { ReloadTaskResult } from './config/reload-task.ts';
import { describeDiff, diffConfigs, hostsOnlyChange, restartOnly, type ConfigDiff } from './config/diff.ts';
import type { Bootstrap } from './xds/bootstrap.ts';
import type { ComposedConfig } from './xds/xds-manager.ts';
import type { XdsManager } from './xds/xds-manager.ts';
import { upgradeStatusPath, writeAtomically, writeJson, writeStatus, type UpgradeStatus } from './config/reload-status.ts';
import { isLoopback, type LogLevel, type ShuttleConfig } from './config/schema.ts';
import { loadSecrets, type Secrets } from './config/secrets.ts';
import { createLogger, type LogFormat, type Logger } from './log/logger.ts';
import { Directory, MAX_WORKER_SLOTS } from './shared/directory.ts';
import { applyIdChanges, idleChecks, type SharedTables } from './shared/id-lifecycle.ts';
import { H, StatsLayout, StatsTable } from './shared/stats-table.ts';
import { RequestTable } from './shared/request-table.ts';
import { HealthStats } from './cluster/health/health-stats.ts';
import { announceReady, isSuccessor, receiveHandover, startSuccessor, type HandedListener, type Handover } from './upgrade/handover.ts';
import { borrowListeners, giveBackListeners, listenInherited, type BorrowedListener } from './upgrade/reuseport-handover.ts';
import { MigrationRelay, fallbackTotal } from './upgrade/migration-relay.ts';
import { receiveMigrations, type MigrationStats } from './upgrade/migration-intake.ts';
import type { ChildProcess } from 'node:child_process';
import { notifySystemd } from './upgrade/systemd.ts';
import { connectSupervisor } from './supervisor/link.ts';
import { inheritedSocketsClosed } from './upgrade/inherited-fds.ts';
import { certificateExpiries, TlsFileWatch } from './net/tls-files.ts';
import type { BalanceMode, BoundListener, ConfigSnapshot } from './workers/messages.ts';
import { addressKey } from './acceptor/acceptor.ts';

export interface StartOptions {
  config: ShuttleConfig;
  secrets: Secrets;
  configFile: string;
  threads: number;
  balance: BalanceMode;
  logLevel?: LogLevel;
  logFormat: LogFormat;
  pidFile?: string;
  /**
   * --bootstrap: listeners and clusters come from this xDS control plane; `base` tops every
   * generation; `seed`: after an upgrade, the old process's composed xDS config (`config` is it, parsed).
   */
  xds?: { bootstrap: Bootstrap; base: Record<string, unknown>; seed?: ComposedConfig };
}

const RELOAD_TASK = new URL('./config/reload-task.ts', import.meta.url).href;

/** The address key (acceptor.addressKey) of a listener of `config`, by name. */
const keyIn = (config: ShuttleConfig) => (name: string): string | undefined => {
  const l = config.listeners.find((x) => x.name === name);
  return l && addressKey(l);
};

/** Whether `config` still has a handed-over socket's listener, at the same address. */
const keptIn = (config: ShuttleConfig) => (h: HandedListener): boolean => config.listeners.some((l) => l.name === h.name && addressKey(l) === h.key);

export async function startServer(opts: StartOptions): Promise<void> {
  const logLevel = opts.logLevel ?? opts.config.log.level;
  const xds = opts.xds;
  let xdsManager: XdsManager | undefined;
  const colorize = opts.logFormat === 'pretty' && process.stdout.isTTY === true;
  const { logger, flush, flushSync } = createLogger({ level: logLevel, format: opts.logFormat, colorize });
  let phase: Phase = 'starting';
  // Under `shuttle start --supervise`: tell the supervisor who we are, when we serve, how we exit.
  const supervisor = connectSupervisor((err) => logger.warn({ err: err.message }, 'supervisor line failed'));
  /** /healthcheck/fail: /ready answers 503 while set; traffic is still served. */
  let healthCheckFailed = false;

  const unfixedPorts = (config: ShuttleConfig) => config.listeners.filter((l) => l.address.port === 0).map((l) => l.name);
  if (opts.balance === 'reuseport' && unfixedPorts(opts.config).length > 0) {
    // Each worker binds its own socket; port 0 would give every worker a different port.
    throw new Error(`--balance reuseport needs a fixed port on every listener (port 0 on: ${unfixedPorts(opts.config).join(', ')})`);
  }

  // The running generation; replaced whole by a successful reload.
  const directory = new Directory();
  let current: ConfigSnapshot = { generation: 1, config: opts.config, secrets: opts.secrets, ids: directory.assign(opts.config) };
  const reloadInfo: ReloadInfo = { attempts: 0, failures: 0, last_time: null, last_ok: null, last_error: null };
  const migrationStats: MigrationStats = { adopted: 0, refused: 0, summary: undefined };
  const upgradeInfo: UpgradeInfo = { upgraded_from_pid: isSuccessor() ? Number(process.env.SHUTTLE_UPGRADE_FROM) || null : null, attempts: 0, last: null };

  // The shared plane: counters, host health, per-worker load and event rings.
  const layout = () => new StatsLayout(current.config, current.ids);
  const stats = StatsTable.create(layout(), MAX_WORKER_SLOTS);
  const requests = RequestTable.create(MAX_WORKER_SLOTS);
  let threads = opts.threads;
  const health = new HostHealth(stats.layout.hosts, logger);
  const healthStats = new HealthStats();
  const outliers = new OutlierDetector(health, logger, (host) => ({ total: stats.sum(stats.layout.host(host) + H.upstream_rq_total), errors: stats.sum(stats.layout.host(host) + H.upstream_rq_error) }), healthStats);
  outliers.setHosts(stats.layout.hosts);
  const checker = new ActiveHealthChecker(health, logger, healthStats);

  const pool = new WorkerPool({
    threads: opts.threads, snapshot: current, balance: opts.balance, logLevel, logFormat: opts.logFormat, colorize, configFile: opts.configFile, logger,
    stats, requests, health: health.table, onEvent: (e) => outliers.onEvent(e),
  });
  const acceptor = new Acceptor(pool, logger);
  const sharedTables = (): SharedTables => ({ stats, requests, health: health.table, policy: pool.policy });
  let reusePortListeners: BoundListener[] = [];
  const listeners = () => (opts.balance === 'reuseport' ? reusePortListeners : acceptor.bound());

  const logLevels = new LogLevels()
    .register('main', { get: () => logger.level as LogLevel, set: (level) => (logger.level = level) })
    .register('workers', { get: () => pool.logLevel, set: (level) => pool.setLogLevel(level) });
  const admin = new AdminServer(logger, { allowedHosts: opts.config.admin.allowed_hosts });
  registerRoutes(admin, {
    phase: () => phase,
    healthCheckFailed: () => healthCheckFailed,
    setHealthCheckFailed: (failed) => (healthCheckFailed = failed),
    drainListeners: () => void drainListeners(),
    config: () => current.config,
    configFile: opts.configFile,
    generation: () => current.generation,
    reload: () => reloadInfo,
    upgrade: () => upgradeInfo,
    listeners,
    balance: opts.balance,
    threads: () => threads,
    pool,
    stats,
    requests,
    logLevels,
    logger,
    health: health.table,
    xds: xds ? () => xdsManager?.xdsStatus() : undefined,
    xdsInitializing: xds ? () => xdsManager?.initializing() ?? true : undefined,
    metrics: createMetricsRegistry({
      xds: xds ? () => xdsManager?.xdsStatus() : undefined, stats, requests, health: health.table, healthStats, pool, migration: migrationStats, info: () => ({ generation: current.generation, reload: reloadInfo }), certificates: () => certificateExpiries(current.config, current.secrets),
      breakers: () => current.config.clusters.flatMap((c, i) => (c.circuit_breakers ? [{ cluster: c.name, id: current.ids.clusters[i], config: c.circuit_breakers }] : [])) }),
  }, processFacts());

  /** Applies a log level to this thread and every worker, present and future. */
  const setLogLevel = (level: LogLevel) => {
    logger.level = level;
    pool.setLogLevel(level);
  };

  const fail = (err: unknown, what: string): never => {
    logger.fatal({ err }, what);
    pool.terminateAll();
    flushSync();
    process.exit(1);
  };

  // Started by an upgrading process: its listening sockets (admin included) are taken over, late,
  // once this process's workers are up, so that the old one accepts until we can serve.
  const successor = isSuccessor();
  let adminAddress = '';
  if (!successor) {
    adminAddress = await admin.listen(current.config.admin.address).catch((err) => fail(err, 'admin server could not listen'));
    logger.info({ address: adminAddress }, 'admin listening');
    if (current.config.admin.allow_remote && !isLoopback(current.config.admin.address.host)) {
      logger.warn({ address: adminAddress }, 'the admin API listens on a non-loopback address (admin.allow_remote): anyone who reaches it can stop workers and read the config');
    }
  }

  // (reuseport, successor: workers wait for the old process's sockets before they listen.)
  const bound = await pool.start(undefined, successor && opts.balance === 'reuseport').catch((err) => fail(err, 'workers failed to start'));
  await checker.update(stats.layout.hosts);

  let handover: Handover | undefined;
  if (successor) {
    handover = await receiveHandover().catch((err) => fail(err, 'upgrade: no sockets from the old process'));
    logger.info({ from: Number(process.env.SHUTTLE_UPGRADE_FROM), listeners: handover.listeners.map((l) => l.name), inherited_connections_closed: inheritedSocketsClosed }, 'upgrade: listening sockets received');
    // An upgrade is how admin.address changes: the old socket is taken over only if it still fits.
    const inheritedAdmin = handover.admin && listensOn(handover.admin, current.config.admin.address) ? handover.admin : undefined;
    if (handover.admin && !inheritedAdmin) handover.admin.close();
    adminAddress = await admin.listen(current.config.admin.address, inheritedAdmin).catch((err) => fail(err, 'admin server could not listen'));
  }
  if (opts.balance === 'reuseport') {
    reusePortListeners = handover
      ? await listenInherited(pool, pool.members(), handover.listeners, keptIn(current.config)).catch((err) => fail(err, 'upgrade: workers could not take the listening sockets'))
      : bound[0];
  } else {
    const adopted = new Set<unknown>();
    for (const l of current.config.listeners) {
      const inherited = handover?.listeners.find((h) => h.name === l.name && h.key === addressKey(l));
      if (inherited) adopted.add(inherited);
      await acceptor.listen(l, inherited).catch((err) => fail(err, `listener ${l.name} could not bind ${l.address.host}:${l.address.port}`));
    }
    // Sockets of listeners the new config no longer has: our copies close, the old process's drain.
    for (const h of handover?.listeners ?? []) {
      if (adopted.has(h)) continue;
      for (const s of h.early ?? []) s.destroy();
      h.server.close();
    }
  }

  if (opts.pidFile) writeAtomically(opts.pidFile, `${process.pid}\n`);
  phase = 'serving';
  if (successor) {
    receiveMigrations(pool, logger, migrationStats);
    announceReady();
  }
  supervisor.ready();
  notifySystemd(logger, { READY: 1, MAINPID: process.pid });
  warnInsecureClusters(current.config, logger);
  logger.info({ listeners: listeners(), admin: adminAddress, threads, balance: opts.balance, config: opts.configFile, generation: current.generation, hash: configHash(current.config) }, 'shuttle ready');

  // ---- reload -----------------------------------------------------------------------------
  let validator: Piscina | undefined;
  let reloading: Promise<void> | undefined;
  let reloadAgain = false;

  const report = (ok: boolean, errors: string[], changed: string[] = []) => {
    if (opts.pidFile) {
      writeStatus(opts.pidFile, { pid: process.pid, attempt: reloadInfo.attempts, ok, generation: current.generation, hash: configHash(current.config), errors, changed, time: new Date().toISOString() });
    }
  };

  const reloadOnce = async () => {
    reloadInfo.attempts++;
    validator ??= new Piscina({ filename: RELOAD_TASK, maxThreads: 1, minThreads: 0, idleTimeout: 30_000 });
    let result: ReloadTaskResult;
    try {
      result = (await validator.run({ file: opts.configFile, running: current.config })) as ReloadTaskResult;
    } catch (err) {
      result = { ok: false, problems: [{ path: '', message: `validation failed: ${(err as Error).message}` }] };
    }
    const rejected = (errors: string[]) => {
      reloadInfo.failures++;
      reloadInfo.last_time = new Date().toISOString();
      reloadInfo.last_ok = false;
      reloadInfo.last_error = errors.join('\n');
      logger.error({ config: opts.configFile, problems: errors, generation: current.generation }, 'config reload rejected; the running config stays');
      report(false, errors);
    };
    if (!result.ok) return rejected(result.problems.map((p) => formatProblem(p, opts.configFile)));
    const problems = await applyGeneration(deepFreeze(result.config), result.secrets, result.diff);
    if (problems) return rejected(problems);
    report(true, [], describeDiff(result.diff));
  };

  /**
   * Applies a validated config as the next generation: the one path for SIGHUP reloads and xDS
   * updates. Returns the problems that refused it (the running generation stays), or null.
   */
  const applyGeneration = async (config: ShuttleConfig, secrets: Secrets, diff: ConfigDiff): Promise<string[] | null> => {
    // Every field reported as changed is applied below, or the reload is refused naming it.
    const needRestart = restartOnly(diff);
    if (needRestart.length > 0) return needRestart;
    if (opts.balance === 'reuseport' && unfixedPorts(config).length > 0) return [`listeners ${unfixedPorts(config).join(', ')}: --balance reuseport needs fixed ports`];
    let ids;
    try {
      ids = directory.assign(config, { idle: idleChecks(sharedTables()) });
    } catch (err) {
      return [(err as Error).message];
    }
    applyIdChanges(directory, sharedTables());
    const next: ConfigSnapshot = { generation: current.generation + 1, config, secrets, ids };
    // Fresh threads when asked for, or when the thread count changes.
    const wantThreads = config.workers.threads ?? threads;
    const replaceWorkers = config.workers.replace_on_reload || wantThreads !== threads;
    // Only hosts changed: workers swap those clusters in place (no new listeners or routers).
    let hostsOnly: string[] | undefined;
    try {
      // The file's level wins over --log-level once the file changes it (before new workers start).
      if (diff.other.includes('log.level')) setLogLevel(config.log.level);
      if (diff.other.includes('admin.allowed_hosts')) admin.setAllowedHosts(config.admin.allowed_hosts);
      acceptor.closeRemoved(config.listeners);
      hostsOnly = replaceWorkers ? undefined : hostsOnlyChange(current.config, config, diff);
      if (hostsOnly) {
        await pool.publishHosts(next, hostsOnly);
      } else if (replaceWorkers) {
        pool.setSnapshot(next);
        // reuseport: the new workers adopt the old ones' sockets (none closed under queued clients).
        const takeOver = opts.balance === 'reuseport'
          ? async (fresh: PoolWorker[], old: PoolWorker[]) => listenInherited(pool, fresh, await borrowListeners(pool, old, keyIn(current.config)), keptIn(config))
          : undefined;
        const bound = await pool.replaceAll(wantThreads, config.drain_timeout, takeOver);
        threads = wantThreads;
        if (opts.balance === 'reuseport') reusePortListeners = bound[0];
      } else {
        await pool.publish(next);
      }
      current = next;
      stats.layout = layout();
      health.setHosts(stats.layout.hosts);
      outliers.setHosts(stats.layout.hosts);
      await checker.update(stats.layout.hosts);
      if (opts.balance === 'handoff') await acceptor.bindNew(config.listeners);
    } catch (err) {
      // Workers may run the new generation already: it is live, but not wholly.
      current = next;
      return [`applying generation ${next.generation} failed: ${(err as Error).message}`];
    }
    reloadInfo.last_time = new Date().toISOString();
    reloadInfo.last_ok = true;
    reloadInfo.last_error = null;
    afterReload();
    warnInsecureClusters(config, logger);
    logger.info({ generation: current.generation, hash: configHash(config), diff, listeners: listeners(), threads, workers_replaced: replaceWorkers, hosts_only: hostsOnly !== undefined, log_level: logger.level, source: xds ? 'xds' : 'file' }, 'config reloaded');
    return null;
  };

  /** An xDS generation: diffed against the running one, applied as a reload is (one at a time). */
  const applyXds = async (config: ShuttleConfig, provided: Record<string, string>): Promise<void> => {
    while (reloading) await reloading;
    // Draining (SIGTERM, /drain_listeners): no listener may be bound again.
    if (phase !== 'serving') throw new Error(`not applied: this process is ${phase}`);
    let done!: () => void;
    reloading = new Promise<void>((resolve) => (done = resolve));
    try {
      // The PEM xDS carried (inline, SDS), and the files its TLS names, read and checked as a file config's are.
      const loaded = await loadSecrets(config, '/', Date.now(), provided);
      if (loaded.problems.length > 0) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
      const problems = await applyGeneration(config, loaded.secrets, diffConfigs(current.config, config));
      if (problems) throw new Error(problems.join('; '));
    } finally {
      reloading = undefined;
      done();
    }
  };

  const reload = () => {
    if (phase !== 'serving') return;
    if (xds) {
      logger.warn({ bootstrap: opts.configFile }, 'SIGHUP ignored: listeners and clusters come from xDS (restart to read the bootstrap again)');
      return;
    }
    if (reloading) {
      reloadAgain = true; // one more pass after this one: the file may have changed again
      return;
    }
    reloading = reloadOnce().finally(() => {
      reloading = undefined;
      if (reloadAgain) {
        reloadAgain = false;
        reload();
      }
    });
  };
  process.on('SIGHUP', reload);

  // Certificates rotate by replacing their files: a change reloads (new handshakes use the new
  // certificates; a bad file is refused as any bad config is, and the running ones stay).
  const tlsWatch = new TlsFileWatch(opts.configFile, () => {
    logger.info('a TLS file changed: reloading');
    reload();
  });
  tlsWatch.update(current.config);
  const afterReload = () => tlsWatch.update(current.config);

  // ---- xDS --------------------------------------------------------------------------------
  if (xds) {
    for (const w of xds.bootstrap.warnings) logger.warn({ bootstrap: opts.configFile, field: w.path, reason: w.message }, `bootstrap field not honoured: ${w.path}`);
    const { XdsManager } = await import('./xds/xds-manager.ts');
    xdsManager = new XdsManager({ bootstrap: xds.bootstrap, base: xds.base, logger, apply: applyXds, seed: xds.seed });
    xdsManager.start();
    logger.info({ server: xds.bootstrap.ads.target, node: xds.bootstrap.nodeId }, 'xds: started');
  }

  // ---- upgrade ----------------------------------------------------------------------------
  let upgrading = false;
  let upgradeAttempts = 0;
  const upgradeReport = (attempt: number, ok: boolean, newPid: number | null, error: string | null) => {
    upgradeInfo.attempts = attempt;
    upgradeInfo.last = { time: new Date().toISOString(), ok, new_pid: newPid, error };
    if (!opts.pidFile) return;
    const status: UpgradeStatus = { pid: process.pid, attempt, ok, newPid, error, time: new Date().toISOString() };
    writeJson(upgradeStatusPath(opts.pidFile), status);
  };
  const upgrade = async () => {
    const attempt = ++upgradeAttempts;
    if (upgrading || phase !== 'serving') {
      const why = upgrading ? 'an upgrade is already in progress' : `this process is ${phase}`;
      logger.warn({ reason: why }, 'upgrade refused');
      upgradeReport(attempt, false, null, `upgrade refused: ${why}`);
      return;
    }
    upgrading = true;
    logger.info({ argv: process.argv.slice(1) }, 'upgrade: starting the new process');
    try {
      const migrate = current.config.connection_migration;
      // Run by xDS: the new process starts from what our control plane made (it asks for it first).
      // reuseport: the workers' sockets are lent for the handover (upgrade/reuseport-handover.ts).
      const lending = opts.balance === 'reuseport' ? { borrow: () => borrowListeners(pool, pool.members(), keyIn(current.config)), giveBack: (b: HandedListener[]) => giveBackListeners(pool, b as BorrowedListener[]) } : {};
      const child = await startSuccessor({ listeners: acceptor.handles(), admin: admin.listening, config: xdsManager?.runningConfig(), ...lending }, current.config.upgrade_timeout, migrate);
      logger.info({ new_pid: child.pid, drain_timeout_ms: current.config.drain_timeout, connection_migration: migrate }, 'upgrade: the new process serves; this one drains');
      upgradeReport(attempt, true, child.pid ?? null, null);
      if (migrate && !(await migrateConnections(child))) {
        upgrading = false;
        upgradeReport(attempt, false, child.pid ?? null, 'the new process exited while connections moved to it; this process serves on');
        return;
      }
      await retire();
    } catch (err) {
      upgrading = false;
      logger.error({ err: (err as Error).message }, 'upgrade failed; this process keeps serving');
      upgradeReport(attempt, false, null, (err as Error).message);
    }
  };
  process.on('SIGUSR2', () => void upgrade());

  // Log rotation: access-log files are opened again by name (after logrotate moved them).
  process.on('SIGUSR1', () => {
    logger.info('SIGUSR1: reopening access-log files');
    pool.reopenLogs();
  });

  /**
   * Moves every connection to the new process (upgrade/migration.ts). Meanwhile this process's
   * listeners stay open and what they accept goes to the new process, so that if it dies, this
   * one takes up serving again, connections and listeners: false then.
   */
  async function migrateConnections(child: ChildProcess): Promise<boolean> {
    const startedAt = performance.now();
    acceptor.diverted = (listener, socket) => {
      const handle = (socket as unknown as { _handle: net.Socket })._handle;
      if (!child.connected) return void pool.dispatch(listener, socket);
      child.send({ type: 'migrate-fresh', listener }, handle, (err) => {
        if (err) pool.dispatch(listener, socket);
        else socket.destroy(); // our descriptor only: the new process has its own
      });
    };
    const windowMs = Math.max(1_000, Math.floor(current.config.drain_timeout / 2));
    const outcome = await new MigrationRelay(child, pool, logger).run(windowMs);
    acceptor.diverted = undefined;
    const report = { migrated: outcome.migrated, drained: fallbackTotal(outcome.fallbacks), drained_by_reason: outcome.fallbacks, ms: Math.round(performance.now() - startedAt) };
    if (outcome.aborted) {
      logger.error(report, 'upgrade: the new process exited while connections moved to it; this process serves on (connections not moved yet stay here)');
      if (opts.pidFile) writeAtomically(opts.pidFile, `${process.pid}\n`);
      notifySystemd(logger, { READY: 1, MAINPID: process.pid });
      return false;
    }
    child.send({ type: 'migrate-done', summary: outcome }, () => child.disconnect());
    logger.info(report, 'upgrade: connections moved to the new process');
    return true;
  }

  // ---- stop -------------------------------------------------------------------------------
  let stopSignals = 0;
  const stop = async (signal: NodeJS.Signals) => {
    if (++stopSignals > 1) {
      logger.warn({ signal }, 'second stop signal: exiting now');
      pool.terminateAll();
      flushSync();
      process.exit(1);
    }
    if (retiring) return; // already retiring after an upgrade
    logger.info({ signal, drain_timeout_ms: current.config.drain_timeout }, 'draining: no new connections; open ones may finish');
    await retire();
  };

  /**
   * /drain_listeners: no new connections; the open ones finish (or are cut at drain_timeout); the
   * process and its admin stay up, /ready answers 503, until a stop signal ends it.
   */
  function drainListeners(): void {
    if (phase === 'draining') return;
    phase = 'draining';
    logger.warn({ drain_timeout_ms: current.config.drain_timeout }, 'listeners drained by the admin (/drain_listeners): no new connections; open ones may finish');
    acceptor.close();
    void drainConnections().then(() => logger.info('listeners drained: every connection is closed'));
  }

  /** The workers drain their connections and exit (once, whoever asks first). */
  let drained: Promise<void> | undefined;
  function drainConnections(): Promise<void> {
    drained ??= pool.drain(current.config.drain_timeout);
    return drained;
  }

  /** Stops accepting, drains the workers' connections, exits 0. */
  let retiring = false;
  async function retire(): Promise<void> {
    retiring = true;
    phase = 'draining';
    acceptor.close();
    checker.stop();
    outliers.stop();
    xdsManager?.stop();
    await drainConnections();
    await Promise.all([admin.close(), validator?.destroy()]);
    if (opts.pidFile) removePidFile(opts.pidFile, logger);
    logger.info('stopped');
    await Promise.all([flush(), supervisor.exiting(0)]);
    process.exit(0);
  }
  process.on('SIGTERM', (s) => void stop(s));
  process.on('SIGINT', (s) => void stop(s));
}

/** Whether a listening socket is bound where `address` says (port 0: any port). */
function listensOn(server: net.Server, address: SocketAddress): boolean {
  const bound = server.address();
  if (!bound || typeof bound !== 'object') return false;
  if (address.port !== 0 && bound.port !== address.port) return false;
  return bound.address === address.host || (address.host === 'localhost' && isLoopback(bound.address));
}

/** Removes the pid file only if it still names this process (a successor may own it). */
function removePidFile(path: string, logger: Logger): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
  } catch (err) {
    logger.debug({ err }, 'pid file not removed');
  }
}

/** Upstream TLS without verification is allowed, never silent. */
function warnInsecureClusters(config: ShuttleConfig, logger: Logger): void {
  const clusters = config.clusters.filter((c) => c.tls?.insecure_skip_verify).map((c) => c.name);
  if (clusters.length > 0) logger.warn({ clusters }, 'upstream TLS certificates are not verified for these clusters (tls.insecure_skip_verify): anyone on the path can impersonate them');
}
