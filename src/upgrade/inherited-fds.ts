/**
 * An upgraded process starts with copies of the old process's connections: sockets that Node
 * hands from the main thread to a worker lose their close-on-exec flag, so the new process
 * inherits every connection open at the moment of the upgrade. It never uses them, but holding
 * them keeps them open: when the old process closes one (drain), the client never sees the close
 * and waits forever. So a successor closes, first thing, every socket it did not open itself:
 * at that point its only legitimate sockets are stdio and the IPC channel to the old process
 * (the listening sockets arrive later, over that channel).
 */
import { closeSync, readdirSync, readlinkSync } from 'node:fs';

/** How many inherited sockets this process closed at start. */
export let inheritedSocketsClosed = 0;

export function closeInheritedSockets(): void {
  if (process.platform !== 'linux') return;
  const keep = new Set([0, 1, 2]);
  const channel = (process.channel as { fd?: number } | undefined)?.fd;
  if (channel !== undefined) keep.add(channel);
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const name of fds) {
    const fd = Number(name);
    if (keep.has(fd)) continue;
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the directory's own fd, gone already
    }
    if (!target.startsWith('socket:')) continue;
    try {
      closeSync(fd);
      inheritedSocketsClosed++;
    } catch {
      // closed meanwhile
    }
  }
}
