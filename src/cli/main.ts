/**
 * The `shuttle` command line. bin/shuttle.js checks the Node version first, then loads this.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { LOG_LEVELS, type LogLevel } from '../config/schema.ts';
import type { BalanceMode } from '../workers/messages.ts';

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

const program = new Command()
  .name('shuttle')
  .description('A multi-threaded service-mesh data plane (sidecar and edge proxy).')
  .version(pkg.version, '-v, --version');

program
  .command('start')
  .description('run the proxy')
  .requiredOption('-c, --config <file>', 'config file (YAML or JSON)')
  .option('-t, --threads <n>', 'worker threads (default: available cores)', positiveInt)
  .addOption(new Option('-b, --balance <mode>', 'how connections reach workers').choices(['handoff', 'reuseport']).default('handoff'))
  .addOption(new Option('-l, --log-level <level>', 'log level (overrides the config)').choices(LOG_LEVELS))
  .option('-p, --pid-file <file>', 'write the pid of the accepting process here')
  .action(async (opts: { config: string; threads?: number; balance: BalanceMode; logLevel?: LogLevel; pidFile?: string }) => {
    const config = await configOrExit(opts.config);
    const { startServer } = await import('../server.ts');
    try {
      await startServer({
        config,
        configFile: opts.config,
        threads: opts.threads ?? config.workers.threads ?? availableParallelism(),
        balance: opts.balance,
        logLevel: opts.logLevel,
        pidFile: opts.pidFile,
      });
    } catch (err) {
      process.stderr.write(`shuttle: ${(err as Error).message}\n`);
      process.exit(1);
    }
  });

program
  .command('validate')
  .description('check a config file and report every problem with its path')
  .requiredOption('-c, --config <file>', 'config file (YAML or JSON)')
  .action(async (opts: { config: string }) => {
    const config = await configOrExit(opts.config);
    process.stdout.write(`${opts.config}: valid (${config.listeners.length} listeners, ${config.clusters.length} clusters)\n`);
  });

program
  .command('reload')
  .description('reload the running config (SIGHUP) and wait for the outcome: exit 0 once the new generation is live')
  .requiredOption('-p, --pid-file <file>', 'the pid file given to `shuttle start`')
  .option('--timeout <seconds>', 'how long to wait for the outcome', (v) => positiveInt(v), 30)
  .action(async (opts: { pidFile: string; timeout: number }) => {
    const { readStatus } = await import('../config/reload-status.ts');
    let pid: number;
    try {
      pid = Number(readFileSync(opts.pidFile, 'utf8').trim());
      process.kill(pid, 0);
    } catch (err) {
      process.stderr.write(`shuttle: no running shuttle found through ${opts.pidFile}: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const before = readStatus(opts.pidFile);
    const seen = before?.pid === pid ? before.attempt : 0;
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + opts.timeout * 1000;
    for (;;) {
      const status = readStatus(opts.pidFile);
      if (status && status.pid === pid && status.attempt > seen) {
        if (status.ok) {
          process.stdout.write(`reloaded: generation ${status.generation} (hash ${status.hash}) is live\n`);
          process.exit(0);
        }
        process.stderr.write(`shuttle: reload rejected; generation ${status.generation} keeps serving:\n${status.errors.map((e) => `  ${e}`).join('\n')}\n`);
        process.exit(1);
      }
      if (Date.now() > deadline) {
        process.stderr.write(`shuttle: no reload outcome from pid ${pid} within ${opts.timeout}s\n`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  });

program
  .command('upgrade')
  .description('upgrade in place (SIGUSR2): start the code now on disk, hand it the listening sockets, drain this process')
  .requiredOption('-p, --pid-file <file>', 'the pid file given to `shuttle start`')
  .option('--timeout <seconds>', 'how long to wait for the outcome', (v) => positiveInt(v), 60)
  .action(async (opts: { pidFile: string; timeout: number }) => {
    const { readJson, upgradeStatusPath } = await import('../config/reload-status.ts');
    type UpgradeStatus = import('../config/reload-status.ts').UpgradeStatus;
    let pid: number;
    try {
      pid = Number(readFileSync(opts.pidFile, 'utf8').trim());
      process.kill(pid, 0);
    } catch (err) {
      process.stderr.write(`shuttle: no running shuttle found through ${opts.pidFile}: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const path = upgradeStatusPath(opts.pidFile);
    const before = readJson<UpgradeStatus>(path);
    const seen = before?.pid === pid ? before.attempt : 0;
    process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + opts.timeout * 1000;
    for (;;) {
      const status = readJson<UpgradeStatus>(path);
      if (status && status.pid === pid && status.attempt > seen) {
        if (status.ok) {
          process.stdout.write(`upgraded: pid ${status.newPid} serves; pid ${pid} drains\n`);
          process.exit(0);
        }
        process.stderr.write(`shuttle: upgrade failed; pid ${pid} keeps serving: ${status.error}\n`);
        process.exit(1);
      }
      if (Date.now() > deadline) {
        process.stderr.write(`shuttle: no upgrade outcome from pid ${pid} within ${opts.timeout}s\n`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  });

await program.parseAsync(process.argv);
