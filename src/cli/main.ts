/**
 * The `shuttle` command line. bin/shuttle.js checks the Node version first, then loads this.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { LOG_LEVELS, type LogLevel } from '../config/schema.ts';
import type { ReloadStatus, UpgradeStatus } from '../config/reload-status.ts';
import type { BalanceMode } from '../workers/messages.ts';
import { defaultLogFormat, LOG_FORMATS, type LogFormat } from '../log/logger.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('expected a whole number from 1 to 256');
  return n;
}

/** Loads the config or prints every problem and exits 1. */
async function configOrExit(file: string) {
  try {
    return await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`shuttle: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** Reads an xDS bootstrap into the first generation (static clusters, admin; no listeners yet), or exits 1. */
async function bootstrapOrExit(file: string) {
  const { BootstrapError, loadBootstrap } = await import('../xds/bootstrap.ts');
  const { xdsConfigSchema } = await import('../config/schema.ts');
  const { deepFreeze, formatPath } = await import('../config/load.ts');
  try {
    const bootstrap = await loadBootstrap(file);
    const base = { version: 1, admin: { address: bootstrap.admin ?? '127.0.0.1:9901' } };
    // Static listeners whose clusters are all static serve from the start; the others wait for CDS.
    const { referencedClusters } = await import('../xds/xds-manager.ts');
    const staticNames = new Set(bootstrap.clusters.map((c) => c.name));
    const listeners = bootstrap.listeners.filter((l) => referencedClusters(l).every((n) => staticNames.has(n as string)));
    const parsed = xdsConfigSchema.safeParse({ ...base, listeners, clusters: bootstrap.clusters });
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${file}: static_resources (as Shuttle config ${formatPath(i.path)}): ${i.message}`);
      process.stderr.write(`shuttle: invalid bootstrap ${file}:\n${problems.join('\n')}\n`);
      process.exit(1);
    }
    return { bootstrap, base, config: deepFreeze(parsed.data) };
  } catch (err) {
    if (err instanceof BootstrapError) {
      process.stderr.write(`shuttle: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/**
 * Started by an upgrading xDS-run process: its composed xDS config, parsed (undefined when not a
 * successor, or the old process had none yet). A config that does not parse exits 1: the old
 * process then keeps serving.
 */
async function upgradeSeedOrExit() {
  const { isSuccessor, receiveRunningConfig } = await import('../upgrade/handover.ts');
  if (!isSuccessor()) return undefined;
  const composed = await receiveRunningConfig().catch((err: Error) => {
    process.stderr.write(`shuttle: upgrade: ${err.message}\n`);
    process.exit(1);
  });
  if (composed === null || typeof composed !== 'object') return undefined;
  // { config, secrets }; a process from before TLS over xDS sends the config alone.
  const { config: raw, secrets } = 'config' in composed ? (composed as { config: unknown; secrets: Record<string, string> }) : { config: composed, secrets: {} };
  const { xdsConfigSchema } = await import('../config/schema.ts');
  const { deepFreeze, formatPath } = await import('../config/load.ts');
  const parsed = xdsConfigSchema.safeParse(raw);
  if (!parsed.success) {
    process.stderr.write(`shuttle: upgrade: the running xDS config does not parse here:\n${parsed.error.issues.slice(0, 5).map((i) => `${formatPath(i.path)}: ${i.message}`).join('\n')}\n`);
    process.exit(1);
  }
  return { composed: { config: raw as Record<string, unknown>, secrets: secrets ?? {} }, config: deepFreeze(parsed.data), secrets: secrets ?? {} };
}

const program = new Command()
  .name('shuttle')
  .description('A multi-threaded service-mesh data plane (sidecar and edge proxy).')
  .version(pkg.version, '-v, --version');

program
  .command('start')
  .description('run the proxy')
  .option('-c, --config <file>', 'config file (YAML or JSON)')
  .option('--bootstrap <file>', 'run as an xDS client: Envoy v3 Bootstrap (YAML or JSON) naming the ADS server; listeners and clusters come from it (docs/xds.md)')
  .option('-t, --threads <n>', 'worker threads (default: available cores)', positiveInt)
  .addOption(new Option('-b, --balance <mode>', 'how connections reach workers').choices(['handoff', 'reuseport']).default('handoff'))
  .addOption(new Option('-l, --log-level <level>', 'log level (overrides the config)').choices(LOG_LEVELS))
  .addOption(new Option('--log-format <format>', 'log lines as JSON or for people (default: pretty when stdout is a terminal, else json)').choices(LOG_FORMATS))
  .option('-p, --pid-file <file>', 'write the pid of the accepting process here')
  .option('--supervise', 'stay as the parent of the serving process: forward signals, follow in-place upgrades, exit with its code (containers, PID 1)')
  .action(async (opts: { config?: string; bootstrap?: string; threads?: number; balance: BalanceMode; logLevel?: LogLevel; logFormat?: LogFormat; pidFile?: string; supervise?: boolean }) => {
    if ((opts.config === undefined) === (opts.bootstrap === undefined)) {
      process.stderr.write('shuttle: start needs either --config FILE or --bootstrap FILE (xDS), not both\n');
      process.exit(1);
    }
    const file = (opts.config ?? opts.bootstrap) as string;
    const xds = opts.bootstrap !== undefined ? await bootstrapOrExit(opts.bootstrap) : undefined;
    // An in-place upgrade of an xDS-run process starts from the config its control plane made.
    const seed = xds ? await upgradeSeedOrExit() : undefined;
    const { config, secrets } = xds ? { config: seed?.config ?? xds.config, secrets: seed?.secrets ?? {} } : await configOrExit(file);
    if (opts.supervise) {
      const { supervise } = await import('../supervisor/supervisor.ts');
      const { createLogger } = await import('../log/logger.ts');
      const logFormat = opts.logFormat ?? defaultLogFormat();
      const { logger, flush } = createLogger({ level: opts.logLevel ?? config.log.level, format: logFormat, colorize: logFormat === 'pretty' && process.stdout.isTTY === true, thread: 'supervisor' });
      // The same command, less --supervise (and the log format fixed, as the child's stdout is ours).
      const args = [...process.execArgv, process.argv[1], ...process.argv.slice(2).filter((a) => a !== '--supervise')];
      if (opts.logFormat === undefined) args.push('--log-format', logFormat);
      const code = await supervise({ command: process.execPath, args, logger });
      await flush();
      process.exit(code);
    }
    const { startServer } = await import('../server.ts');
    try {
      await startServer({
        config,
        secrets,
        configFile: file,
        xds: xds ? { bootstrap: xds.bootstrap, base: xds.base, seed: seed?.composed } : undefined,
        threads: opts.threads ?? config.workers.threads ?? availableParallelism(),
        balance: opts.balance,
        logLevel: opts.logLevel,
        logFormat: opts.logFormat ?? defaultLogFormat(),
        pidFile: opts.pidFile,
      });
    } catch (err) {
      process.stderr.write(`shuttle: ${(err as Error).message}\n`);
      process.exit(1);
    }
  });

program
  .command('validate')
  .description('check a config file (or an xDS bootstrap) and report every problem with its path')
  .option('-c, --config <file>', 'config file (YAML or JSON)')
  .option('--bootstrap <file>', 'an Envoy v3 Bootstrap for `start --bootstrap`: errors, and the fields Shuttle does not honour')
  .action(async (opts: { config?: string; bootstrap?: string }) => {
    if ((opts.config === undefined) === (opts.bootstrap === undefined)) {
      process.stderr.write('shuttle: validate needs either --config FILE or --bootstrap FILE, not both\n');
      process.exit(1);
    }
    if (opts.bootstrap !== undefined) {
      const { bootstrap, config } = await bootstrapOrExit(opts.bootstrap);
      const tls = bootstrap.ads.tls ? (bootstrap.ads.tls.cert ? ' over mTLS' : ' over TLS') : '';
      const lines = [`${opts.bootstrap}: valid bootstrap (${bootstrap.ads.delta ? 'delta' : 'state-of-the-world'} ADS to ${bootstrap.ads.target}${tls}; ${config.clusters.length} static clusters, ${bootstrap.listeners.length} static listeners)`];
      if (bootstrap.warnings.length > 0) lines.push(`${bootstrap.warnings.length} field(s) not honoured:`, ...bootstrap.warnings.map((w) => `  ${opts.bootstrap}: ${w.path}: ${w.message}`));
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    const { config } = await configOrExit(opts.config!);
    process.stdout.write(`${opts.config}: valid (${config.listeners.length} listeners, ${config.clusters.length} clusters)\n`);
  });

program
  .command('ready')
  .description('exit 0 when the admin API says this Shuttle is ready (/ready answers 200): a container HEALTHCHECK')
  .option('--admin <host:port>', 'the admin address', '127.0.0.1:9901')
  .option('--timeout <seconds>', 'how long to wait for the answer', (v) => positiveInt(v), 3)
  .action(async (opts: { admin: string; timeout: number }) => {
    try {
      const res = await fetch(`http://${opts.admin}/ready`, { signal: AbortSignal.timeout(opts.timeout * 1000) });
      const body = (await res.text()).trim();
      (res.status === 200 ? process.stdout : process.stderr).write(`${res.status === 200 ? '' : 'shuttle: '}${opts.admin}/ready: ${res.status} ${body}\n`);
      process.exit(res.status === 200 ? 0 : 1);
    } catch (err) {
      process.stderr.write(`shuttle: ${opts.admin}/ready: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}\n`);
      process.exit(1);
    }
  });

program
  .command('schema')
  .description('print the config\'s JSON Schema (for editors: # yaml-language-server: $schema=...)')
  .action(async () => {
    const { configJsonSchema } = await import('../config/json-schema.ts');
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

/**
 * Signals the process named by the pid file, then waits for the status file it writes for that
 * attempt (attempt number above the one seen before), and exits 0 or 1 with the outcome.
 */
async function signalAndWait<S extends { pid: number; attempt: number; ok: boolean }>(
  what: string,
  opts: { pidFile: string; timeout: number },
  signal: NodeJS.Signals,
  statusPath: string,
  describe: (status: S, pid: number) => string,
): Promise<never> {
  const { readJson } = await import('../config/reload-status.ts');
  let pid: number;
  try {
    pid = Number(readFileSync(opts.pidFile, 'utf8').trim());
    process.kill(pid, 0);
  } catch (err) {
    process.stderr.write(`shuttle: no running shuttle found through ${opts.pidFile}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const before = readJson<S>(statusPath);
  const seen = before?.pid === pid ? before.attempt : 0;
  process.kill(pid, signal);
  const deadline = Date.now() + opts.timeout * 1000;
  for (;;) {
    const status = readJson<S>(statusPath);
    if (status && status.pid === pid && status.attempt > seen) {
      (status.ok ? process.stdout : process.stderr).write(`${status.ok ? '' : 'shuttle: '}${describe(status, pid)}\n`);
      process.exit(status.ok ? 0 : 1);
    }
    if (Date.now() > deadline) {
      process.stderr.write(`shuttle: no ${what} outcome from pid ${pid} within ${opts.timeout}s\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

program
  .command('reload')
  .description('reload the running config (SIGHUP) and wait for the outcome: exit 0 once the new generation is live')
  .requiredOption('-p, --pid-file <file>', 'the pid file given to `shuttle start`')
  .option('--timeout <seconds>', 'how long to wait for the outcome', (v) => positiveInt(v), 30)
  .action(async (opts: { pidFile: string; timeout: number }) => {
    const { statusPath } = await import('../config/reload-status.ts');
    await signalAndWait<ReloadStatus>('reload', opts, 'SIGHUP', statusPath(opts.pidFile), (s) => (s.ok
      ? `reloaded: generation ${s.generation} (hash ${s.hash}) is live${s.changed?.length ? `; changed: ${s.changed.join(', ')}` : '; nothing changed'}`
      : `reload rejected; generation ${s.generation} keeps serving:\n${s.errors.map((e) => `  ${e}`).join('\n')}`));
  });

program
  .command('upgrade')
  .description('upgrade in place (SIGUSR2): start the code now on disk, hand it the listening sockets, drain this process')
  .requiredOption('-p, --pid-file <file>', 'the pid file given to `shuttle start`')
  .option('--timeout <seconds>', 'how long to wait for the outcome', (v) => positiveInt(v), 60)
  .action(async (opts: { pidFile: string; timeout: number }) => {
    const { upgradeStatusPath } = await import('../config/reload-status.ts');
    await signalAndWait<UpgradeStatus>('upgrade', opts, 'SIGUSR2', upgradeStatusPath(opts.pidFile), (s, pid) => (s.ok
      ? `upgraded: pid ${s.newPid} serves; pid ${pid} drains`
      : `upgrade failed; pid ${pid} keeps serving: ${s.error}`));
  });

await program.parseAsync(process.argv);
