/**
 * Outcomes of reload and upgrade attempts, written next to the pid file so that `shuttle reload`
 * and `shuttle upgrade` can wait for their own attempt and report it (no admin address needed).
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
  /** What the reload changed (`log.level`, `cluster b added`); empty when refused or unchanged. */
  changed?: string[];
  time: string;
}

export function statusPath(pidFile: string): string {
  return `${pidFile}.reload.json`;
}

export interface UpgradeStatus {
  /** The process that was asked to upgrade. */
  pid: number;
  attempt: number;
  ok: boolean;
  newPid: number | null;
  error: string | null;
  time: string;
}

export function upgradeStatusPath(pidFile: string): string {
  return `${pidFile}.upgrade.json`;
}

export function writeJson(path: string, value: unknown): void {
  writeAtomically(path, JSON.stringify(value));
}

/**
 * Readers see the old file or the new one, never half of one (or an empty one: a pid file
 * rewritten in place at an upgrade read as pid 0 by a reader that came between truncate and write).
 */
export function writeAtomically(path: string, text: string): void {
  // (A temporary name of this process's own: the old and new process of an upgrade both write.)
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function writeStatus(pidFile: string, status: ReloadStatus): void {
  writeJson(statusPath(pidFile), status);
}

export function readStatus(pidFile: string): ReloadStatus | undefined {
  return readJson<ReloadStatus>(statusPath(pidFile));
}
