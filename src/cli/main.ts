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
        threads: opts.threads ?? availableParallelism(),
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

await program.parseAsync(process.argv);
