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
import { cpuSplit, freePort, startNginx, startShuttle, stop } from './support/lib.ts';
const dir = mkdtempSync(join(tmpdir(), 'h2series-'));
const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p} http2; location / { return 200 "hello from the upstream\\n"; } }`);
const port = await freePort();
const shuttle = await startShuttle({
  listeners: [{ name: 'h2', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, http: { codec: 'http2' }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up' }] }] }],
  clusters: [{ name: 'up', protocol: 'http2', hosts: [`127.0.0.1:${upstream.port}`], http2: { max_connections: 1, max_concurrent_streams: 1000 } }],
}, 1);
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
  await stop(shuttle);
  upstream.child.kill('SIGTERM');
}
