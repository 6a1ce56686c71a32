/**
 * The outcome of each reload attempt, written next to the pid file so that `shuttle reload` can
 * wait for its own attempt and report it (no admin address needed).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface ReloadStatus {
  pid: number;
  /** Counts SIGHUPs handled; `shuttle reload` waits for it to pass the value it saw. */
  attempt: number;
  ok: boolean;
  generation: number;
  hash: string;
  errors: string[];
  time: string;
}

export function statusPath(pidFile: string): string {
  return `${pidFile}.reload.json`;
}

export function writeStatus(pidFile: string, status: ReloadStatus): void {
  const path = statusPath(pidFile);
  writeFileSync(`${path}.tmp`, JSON.stringify(status));
  renameSync(`${path}.tmp`, path); // readers see the old file or the new one, never half of one
}

export function readStatus(pidFile: string): ReloadStatus | undefined {
  try {
    return JSON.parse(readFileSync(statusPath(pidFile), 'utf8')) as ReloadStatus;
  } catch {
    return undefined;
  }
}
