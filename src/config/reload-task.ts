/**
 * The piscina task behind a reload: read, parse, validate and diff a config file on a pool
 * thread, so that a large config never stalls the acceptor's event loop.
 */
import { diffConfigs, type ConfigDiff } from './diff.ts';
import { ConfigError, loadConfigFile, type ConfigProblem } from './load.ts';
import type { ShuttleConfig } from './schema.ts';
import type { Secrets } from './secrets.ts';

export type ReloadTaskResult =
  | { ok: true; config: ShuttleConfig; secrets: Secrets; diff: ConfigDiff }
  | { ok: false; problems: ConfigProblem[] };

export default async function reloadTask({ file, running }: { file: string; running: ShuttleConfig }): Promise<ReloadTaskResult> {
  try {
    const { config, secrets } = await loadConfigFile(file);
    return { ok: true, config, secrets, diff: diffConfigs(running, config) };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: [...err.problems] };
    return { ok: false, problems: [{ path: '', message: (err as Error).message }] };
  }
}
