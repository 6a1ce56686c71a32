/**
 * systemd integration for Type=notify services: READY=1 at start, and MAINPID=<new pid> when an
 * upgrade hands over, so systemd follows the new process instead of stopping the service when the
 * old one exits (a Type=simple service is considered stopped when its main process exits).
 * Uses the systemd-notify tool (a unix datagram socket is not reachable from Node's own API);
 * needs NotifyAccess=all. Does nothing outside systemd. Under `shuttle start --supervise` only
 * the supervisor notifies (its children do not see NOTIFY_SOCKET): it stays the main process.
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.ts';

export function notifySystemd(logger: Logger, fields: Record<string, string | number>): void {
  if (!process.env.NOTIFY_SOCKET) return;
  // --no-block: do not wait for systemd to acknowledge (a BARRIER round trip of up to 5 s).
  const args = ['--no-block', ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)];
  execFile('systemd-notify', args, (err) => {
    if (err) logger.warn({ err: err.message, fields }, 'systemd-notify failed');
  });
}
