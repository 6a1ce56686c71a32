/**
 * One Shuttle process (1 thread, h2c both sides, nginx upstream) under consecutive h2load runs of
 * REQUESTS requests: per run, proxy CPU µs per request (user and total), and the read and write
 * system calls per request (/proc/PID/io syscr/syscw, every thread; eventfd wake-ups included).
 * Shows how CPU per request moves with batching: the faster the proxy's JavaScript, the fewer
 * requests each read and write carries, and the more system calls per request.
 *
 *   node bench/h2-series.ts        (env: CHUNKS=12 REQUESTS=150000)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSplit, startH2Proxy } from './support/lib.ts';
const dir = mkdtempSync(join(tmpdir(), 'h2series-'));
const { port, shuttle, stop: stopProxy } = await startH2Proxy(dir);
/** Read and write system calls of a process so far (every thread). */
function syscalls(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { reads: Number(/syscr: (\d+)/.exec(io)![1]), writes: Number(/syscw: (\d+)/.exec(io)![1]) };
}

const N = Number(process.env.REQUESTS ?? 150_000);
const perRequest = (x: number, digits = 1) => ((x / N) * (digits === 1 ? 1e6 : 1)).toFixed(digits);
try {
  for (let i = 0; i < Number(process.env.CHUNKS ?? 12); i++) {
    const [c0, s0] = [cpuSplit(shuttle.pid!), syscalls(shuttle.pid!)];
    const out = execFileSync('h2load', ['-n', String(N), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: 120_000 });
    const [c1, s1] = [cpuSplit(shuttle.pid!), syscalls(shuttle.pid!)];
    const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1];
    console.log(`run ${i}: ${perRequest(c1.user + c1.sys - c0.user - c0.sys)} µs/req (user ${perRequest(c1.user - c0.user)}), reads/req ${perRequest(s1.reads - s0.reads, 3)}, writes/req ${perRequest(s1.writes - s0.writes, 3)}, ${rps} req/s`);
  }
} finally {
  await stopProxy();
}
