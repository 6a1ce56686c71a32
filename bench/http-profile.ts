/**
 * Where the HTTP/1 proxy path spends its time: Shuttle (1 thread, keep-alive both sides, nginx
 * `return 200` upstream) under wrk at 10 connections, profiled by its worker
 * (SHUTTLE_CPU_PROFILE_DIR); prints the top functions by self time. MODE=l4 runs Shuttle's TCP
 * relay on the same traffic instead (the socket floor), so the two can be compared.
 *
 *   node bench/http-profile.ts   (env: MODE=http|l4 SECONDS=8; SYSCALLS=1: count the proxy's
 *                                 system calls per request with `strace -c -f` instead; PERF=1:
 *                                 `perf record` every thread instead, JIT frames named;
 *                                 CLOSE=1: a new connection per request (`Connection: close`),
 *                                 what bench:conn measures; BALANCE=reuseport|handoff)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSplit, freePort, startNginx, startShuttleWith, stop } from './support/lib.ts';
import { PERF_NODE_OPTION, printCpuProfiles, startPerf, startSyscallCount } from './support/profiles.ts';

const MODE = process.env.MODE ?? 'http';
const SECONDS = Number(process.env.SECONDS ?? 8);
const SYSCALLS = process.env.SYSCALLS === '1';
/** PERF=1: `perf record` the proxy (JIT symbols from --perf-basic-prof) and print `perf report`'s top symbols. */
const PERF = process.env.PERF === '1';
if (PERF) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${PERF_NODE_OPTION}`;
const dir = mkdtempSync(join(tmpdir(), 'shuttle-http-prof-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-http-cpu-'));
if (!SYSCALLS && !PERF) process.env.SHUTTLE_CPU_PROFILE_DIR = profDir;

const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p}; location / { return 200 "hello from the upstream\\n"; } }`);
const port = await freePort();
const listener = MODE === 'l4'
  ? { name: 'l4', address: `127.0.0.1:${port}`, protocol: 'tcp', access_log: false, cluster: 'up' }
  : { name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }] };
const CLOSE = process.env.CLOSE === '1';
const wrkClose = CLOSE ? ['-H', 'Connection: close'] : [];
const balance = process.env.BALANCE === 'reuseport' ? 'reuseport' : 'handoff';
const shuttle = (await startShuttleWith({ listeners: [listener], clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstream.port}`] }] }, 1, { balance })).child;
let requests = 0;
try {
  execFileSync('wrk', ['-t1', '-c10', '-d1s', ...wrkClose, `http://127.0.0.1:${port}/`], { stdio: 'ignore' }); // warm-up
  const stopSyscalls = SYSCALLS ? await startSyscallCount(shuttle.pid!) : undefined;
  const stopPerf = PERF ? await startPerf(shuttle.pid!, dir, Number(process.env.TOP ?? 60)) : undefined;
  const c0 = cpuSplit(shuttle.pid!);
  const out = execFileSync('wrk', ['-t1', '-c10', `-d${SECONDS}s`, ...wrkClose, `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  const c1 = cpuSplit(shuttle.pid!);
  requests = Number(/(\d+) requests in/.exec(out)![1]);
  await stopPerf?.();
  await stopSyscalls?.(requests);
  const us = (s: number) => ((s * 1e6) / requests).toFixed(1);
  console.log(`${MODE}${CLOSE ? ` (a connection per request, ${balance})` : ''}: ${requests} requests, proxy CPU ${us(c1.user + c1.sys - c0.user - c0.sys)} µs/request (user ${us(c1.user - c0.user)}, kernel ${us(c1.sys - c0.sys)})${SYSCALLS ? ' under strace' : PERF ? ' under perf' : ' profiling on'}`);
} finally {
  await stop(shuttle, 60_000);
  upstream.child.kill('SIGTERM');
}

printCpuProfiles(profDir);
