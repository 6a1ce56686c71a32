/**
 * /server_info (Envoy's): what runs, since when, in which state, started how, under which config.
 */
import { NODE_VERSION, SHUTTLE_VERSION } from '../build-info.ts';
import { FIRST_STARTED_AT, RESTART_GENERATION, STARTED_AT } from '../upgrade/restart-epoch.ts';
import { createHash } from 'node:crypto';
import type { ShuttleConfig } from '../config/schema.ts';
import type { AdminState } from './routes.ts';

/** Digests of listeners and clusters by object: a generation shares the unchanged ones (frozen). */
const partDigests = new WeakMap<object, string>();
const partDigest = (part: object): string => {
  let d = partDigests.get(part);
  if (d === undefined) partDigests.set(part, (d = createHash('sha256').update(JSON.stringify(part)).digest('hex')));
  return d;
};

/**
 * A short digest of a config: equal configs have equal hashes. Made of one digest per listener
 * and cluster, kept per (frozen) object, so that the hash of an xDS generation that changed one
 * cluster among a thousand costs that cluster's digest, not the whole config's.
 */
export function configHash(config: ShuttleConfig): string {
  const { listeners, clusters, ...rest } = config;
  const h = createHash('sha256').update(JSON.stringify(rest));
  for (const l of listeners) h.update(partDigest(l));
  h.update('|');
  for (const c of clusters) h.update(partDigest(c));
  return h.digest('hex').slice(0, 16);
}

/** starting, live, or draining (listeners drained, stopping, or failing health checks on purpose). */
export function serverState(s: Pick<AdminState, 'phase' | 'healthCheckFailed'>): 'starting' | 'live' | 'draining' {
  const phase = s.phase();
  if (phase === 'starting') return 'starting';
  return phase === 'draining' || s.healthCheckFailed() ? 'draining' : 'live';
}

/** Facts fixed for the life of the process. */
export interface ProcessFacts {
  /** How the process was started: the Node binary, its flags, then the script and its arguments. */
  commandLine: readonly string[];
}

export function processFacts(): ProcessFacts {
  return { commandLine: [process.execPath, ...process.execArgv, ...process.argv.slice(1)] };
}

const seconds = (ms: number) => Math.round(ms) / 1000;

export function serverInfo(s: AdminState, facts: ProcessFacts) {
  const now = Date.now();
  const upgrade = s.upgrade();
  return {
    version: SHUTTLE_VERSION,
    node_version: NODE_VERSION,
    pid: process.pid,
    state: serverState(s),
    health_check_failed: s.healthCheckFailed(),
    started_at: new Date(STARTED_AT).toISOString(),
    uptime_seconds: seconds(now - STARTED_AT),
    /** Since the first process of this chain of in-place upgrades started. */
    uptime_all_epochs_seconds: seconds(now - FIRST_STARTED_AT),
    hot_restart_generation: RESTART_GENERATION,
    upgraded_from_pid: upgrade.upgraded_from_pid,
    command_line: facts.commandLine,
    config_file: s.configFile,
    config_generation: s.generation(),
    config_hash: configHash(s.config()),
    threads: s.threads(),
    balance: s.balance,
    last_reload: s.reload(),
    last_upgrade: upgrade.last,
  };
}
