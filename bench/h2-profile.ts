/**
 * Where the HTTP/2 proxy path spends its time: Shuttle (1 thread, h2c both sides, nginx upstream)
 * under h2load, profiled by its worker (SHUTTLE_CPU_PROFILE_DIR); prints the top functions by self
 * time. `node bench/h2-profile.ts` (env: REQUESTS=200000; SYSCALLS=1: count the proxy's system calls
 * per request with `strace -c -f` instead of profiling; PERF=1: `perf record` every thread instead,
 * JIT frames named; TOP=60)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, startH2Proxy } from './support/lib.ts';
import { PERF_NODE_OPTION, printCpuProfiles, startPerf, startSyscallCount } from './support/profiles.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-prof-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-h2-cpu-'));
const SYSCALLS = process.env.SYSCALLS === '1';
const PERF = process.env.PERF === '1';
if (PERF) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${PERF_NODE_OPTION}`;
else if (!SYSCALLS) process.env.SHUTTLE_CPU_PROFILE_DIR = profDir;

const { port, shuttle, stop: stopProxy } = await startH2Proxy(dir);
let cpu = 0;
try {
  const before = cpuSeconds(shuttle.pid!);
  const stopSyscalls = SYSCALLS ? await startSyscallCount(shuttle.pid!) : undefined;
  const stopPerf = PERF ? await startPerf(shuttle.pid!, dir, Number(process.env.TOP ?? 60)) : undefined;
  execFileSync('h2load', ['-n', String(REQUESTS), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { stdio: 'ignore', timeout: 120_000 });
  cpu = cpuSeconds(shuttle.pid!) - before;
  await stopPerf?.();
  await stopSyscalls?.(REQUESTS);
} finally {
  await stopProxy();
}
console.log(`${REQUESTS} requests, proxy CPU ${((cpu * 1e6) / REQUESTS).toFixed(1)} µs/request (profiling on)`);

printCpuProfiles(profDir, 45, true);
