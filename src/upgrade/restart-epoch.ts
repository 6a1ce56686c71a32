/**
 * Which process this is in a chain of in-place upgrades (Envoy's hot-restart epoch): 0 for a
 * process started by hand, n + 1 for the successor of process n. The time the chain's first
 * process started travels along too, for uptime over all epochs. Both ride in the successor's
 * environment; anything unreadable there counts as a fresh start.
 */
const GENERATION_ENV = 'SHUTTLE_RESTART_GENERATION';
const FIRST_START_ENV = 'SHUTTLE_FIRST_STARTED_AT';

function envInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw !== undefined && /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) ? n : fallback;
}

export const STARTED_AT = Date.now();
export const RESTART_GENERATION = envInteger(GENERATION_ENV, 0);
/** When the chain's first process started (ms since the epoch); not after this one's start. */
export const FIRST_STARTED_AT = Math.min(envInteger(FIRST_START_ENV, STARTED_AT), STARTED_AT);

/** What a successor's environment carries from this process. */
export function successorEnv(): Record<string, string> {
  return { [GENERATION_ENV]: String(RESTART_GENERATION + 1), [FIRST_START_ENV]: String(FIRST_STARTED_AT) };
}
