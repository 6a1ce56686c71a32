/** Processes a test started indirectly (an upgrade's successors): are they running, and stopping them. */
import { readFileSync } from 'node:fs';
import { eventually } from './wait.ts';

/** Running (an exited orphan may linger as a zombie until init reaps it: that is not alive). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Stops whatever process the pid file names now (the newest generation), and waits for it. */
export async function stopByPidFile(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    return;
  }
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  await eventually(async () => alive(pid), (a) => !a, 15_000).catch(() => process.kill(pid, 'SIGKILL'));
}

/**
 * Runs `shuttle upgrade` `times` times in a row against the process the pid file names. Each must
 * succeed, name a new pid that serves, and its predecessor must exit: by its drain deadline, plus
 * the workers' 2 s backstop and generous slack for a busy machine (the successor's start-up time
 * is not part of it: it varies with the machine's load). Returns every pid, `firstPid` first.
 */
export async function upgradeInTurn(pidFile: string, firstPid: number, times: number, drainMs: number): Promise<number[]> {
  const { runCli } = await import('./shuttle.ts');
  const pids = [firstPid];
  for (let i = 0; i < times; i++) {
    const old = pids.at(-1)!;
    const r = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    if (r.code !== 0 || r.stderr !== '') throw new Error(`upgrade ${i + 1} failed (code ${r.code}): ${r.stderr}`);
    const next = Number(readFileSync(pidFile, 'utf8'));
    if (next === old || !r.stdout.includes(`pid ${next} serves`)) throw new Error(`upgrade ${i + 1}: pid file names ${next} (was ${old}); the CLI said: ${r.stdout}`);
    pids.push(next);
    await eventually(async () => alive(old), (a) => !a, drainMs + 2_000 + 15_000);
  }
  return pids;
}
