/**
 * Where the HTTP/2 proxy path spends its time: Shuttle (1 thread, h2c both sides, nginx upstream)
 * under h2load, profiled by its worker (SHUTTLE_CPU_PROFILE_DIR); prints the top functions by self
 * time. `node bench/h2-profile.ts` (env: REQUESTS=200000; SYSCALLS=1: count the proxy's system calls
 * per request with `strace -c -f` instead of profiling)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, startH2Proxy } from './support/lib.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-prof-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-h2-cpu-'));
const SYSCALLS = process.env.SYSCALLS === '1';
if (!SYSCALLS) process.env.SHUTTLE_CPU_PROFILE_DIR = profDir;

const { port, shuttle, stop: stopProxy } = await startH2Proxy(dir);
let cpu = 0;
try {
  const before = cpuSeconds(shuttle.pid!);
  const strace = SYSCALLS ? spawn('strace', ['-c', '-f', '-p', String(shuttle.pid)], { stdio: ['ignore', 'ignore', 'pipe'] }) : undefined;
  let counts = '';
  strace?.stderr!.on('data', (d) => (counts += d));
  if (strace) await new Promise((r) => setTimeout(r, 1000));
  execFileSync('h2load', ['-n', String(REQUESTS), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { stdio: 'ignore', timeout: 120_000 });
  cpu = cpuSeconds(shuttle.pid!) - before;
  if (strace) {
    strace.kill('SIGINT');
    await new Promise((r) => strace.once('close', r));
    console.log(`system calls per request (${REQUESTS} requests):`);
    for (const line of counts.split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line);
      if (m && Number(m[1]) > REQUESTS / 100) console.log(`  ${m[2].padEnd(16)} ${(Number(m[1]) / REQUESTS).toFixed(3)}`);
    }
  }
} finally {
  await stopProxy();
}
console.log(`${REQUESTS} requests, proxy CPU ${((cpu * 1e6) / REQUESTS).toFixed(1)} µs/request (profiling on)`);

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number }
for (const f of readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'))) {
  const p = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as { nodes: Node[] };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const url = n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + n.hitCount);
    total += n.hitCount;
  }
  console.log(`\n${f}: top self time`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 45)) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
  const byFile = new Map<string, number>();
  for (const [k, v] of self) {
    const file = k.split(' ')[1].replace(/:\d+$/, '') || '(native)';
    byFile.set(file, (byFile.get(file) ?? 0) + v);
  }
  console.log('\nby file:');
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
}
