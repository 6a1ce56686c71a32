/**
 * Where the Bolt (or Dubbo) proxy path spends its time: Shuttle (1 thread) under sofa-rpc-node
 * load with 128 calls in flight, profiled by its worker (SHUTTLE_CPU_PROFILE_DIR); prints the top
 * functions by self time. `node bench/rpc-profile.ts` (env: PROTOCOL=bolt|dubbo SECONDS=6 CONCURRENCY=128;
 * PERF=1: `perf record` the proxy instead, samples split into kernel, V8, native and JavaScript; TOP=60;
 * ALLOC=1: bytes allocated per call by function instead, from the worker's sampling heap profiler;
 * SYSCALLS=1: the proxy's system calls per call, from `strace -c -f`)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, startShuttle, stop } from './support/lib.ts';
import { PERF_NODE_OPTION, printCpuProfiles, printHeapProfiles, startPerf, startSyscallCount } from './support/profiles.ts';

const SECONDS = Number(process.env.SECONDS ?? 6);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 128);
const PROTOCOL = process.env.PROTOCOL === 'dubbo' ? 'dubbo' : 'bolt';
const require = createRequire(import.meta.url);
const { RpcClient } = require('sofa-rpc-node').client;
const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-rpc-prof-'));
const PERF = process.env.PERF === '1';
const ALLOC = process.env.ALLOC === '1';
const SYSCALLS = process.env.SYSCALLS === '1';
if (SYSCALLS) { /* strace only */ } else if (PERF) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${PERF_NODE_OPTION}`;
else if (ALLOC) process.env.SHUTTLE_HEAP_PROFILE_DIR = profDir;
else process.env.SHUTTLE_CPU_PROFILE_DIR = profDir;

const upstreamPort = await freePort();
const server = spawn(process.execPath, [fileURLToPath(new URL('../test/support/bolt-server.ts', import.meta.url)), String(upstreamPort), 'bench', PROTOCOL], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve) => server.stdout!.on('data', (d) => String(d).includes('ready') && resolve()));
const port = await freePort();
const shuttle = await startShuttle({
  listeners: [{ name: 'rpc', address: `127.0.0.1:${port}`, protocol: PROTOCOL, access_log: false, rpc: { routes: [{ cluster: 'echo' }] } }],
  clusters: [{ name: 'echo', hosts: [`127.0.0.1:${upstreamPort}`] }],
}, 1);
const client = new RpcClient({ logger: quiet, ...(PROTOCOL === 'dubbo' ? { protocol: require('dubbo-remoting') } : {}) });
await client.ready();
const consumer = client.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${port}`, ...(PROTOCOL === 'dubbo' ? { version: '1.0.0' } : {}) });
await consumer.ready();
const stopPerf = PERF ? await startPerf(shuttle.pid!, profDir, Number(process.env.TOP ?? 60)) : undefined;
const stopSyscalls = SYSCALLS ? await startSyscallCount(shuttle.pid!) : undefined;
const before = cpuSeconds(shuttle.pid!);
let calls = 0;
const deadline = Date.now() + SECONDS * 1000;
await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
  while (Date.now() < deadline && calls < 5_000_000) {
    await consumer.invoke('echo', ['x'], { responseTimeout: 5_000 });
    calls++;
  }
}));
const cpu = cpuSeconds(shuttle.pid!) - before;
await stopPerf?.();
await stopSyscalls?.(calls);
await client.close();
await stop(shuttle, 60_000);
server.kill('SIGKILL');
console.log(`${calls} calls, ${(calls / SECONDS).toFixed(0)}/s, proxy CPU ${((cpu * 1e6) / calls).toFixed(1)} µs/call (profiling on: ~10% more)`);

if (ALLOC) printHeapProfiles(profDir, calls, 'call');
else if (!PERF && !SYSCALLS) printCpuProfiles(profDir);
