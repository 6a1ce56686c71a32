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
