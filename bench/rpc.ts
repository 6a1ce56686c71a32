/**
 * RPC benchmark, SOFA Bolt or Dubbo: sofa-rpc-node RpcClient → (direct | Shuttle bolt/dubbo
 * listener, 1 and 2 threads | HAProxy tcp mode) → sofa-rpc-node RpcServer (its own process), in
 * one run. Concurrency 1/16/128 calls in flight over one client connection; calls/s, p50/p99, the
 * proxy's CPU µs per call, ratios to direct and to HAProxy (rate, and calls per proxy
 * CPU-second). Medians of REPS runs.
 *
 *   npm run bench:rpc        (env: PROTOCOL=bolt|dubbo REPS=3 SECONDS=4 CONCURRENCY=1,16,128,
 *                             BASELINE=path of an older checkout, for an A/B in the same run)
 *   npm run bench:dubbo      (PROTOCOL=dubbo)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, inTurn, median, percentile, startShuttle, stop, table, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 4);
const WARMUP_SECONDS = Number(process.env.WARMUP ?? 1);
const CONCURRENCY = (process.env.CONCURRENCY ?? '1,16,128').split(',').map(Number);
const PROTOCOL = process.env.PROTOCOL === 'dubbo' ? 'dubbo' : 'bolt';
const MAX_CALLS = 2_000_000; // a hard bound on the load loop
const SERVER = fileURLToPath(new URL('../test/support/bolt-server.ts', import.meta.url));
const require = createRequire(import.meta.url);
const { RpcClient } = require('sofa-rpc-node').client;
const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const dir = mkdtempSync(join(tmpdir(), 'shuttle-rpc-bench-'));

interface Target { name: string; port: number; pid?: number; stop(): Promise<void> }

async function run(port: number, concurrency: number, loadSeconds = SECONDS): Promise<{ rate: number; p50: number; p99: number; calls: number; errors: number }> {
  const client = new RpcClient({ logger: quiet, ...(PROTOCOL === 'dubbo' ? { protocol: require('dubbo-remoting') } : {}) });
  await client.ready();
  const consumer = client.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${port}`, ...(PROTOCOL === 'dubbo' ? { version: '1.0.0' } : {}) });
  await consumer.ready();
  await consumer.invoke('echo', ['warm'], { responseTimeout: 5_000 });
  const latencies = new Float64Array(MAX_CALLS);
  let calls = 0;
  let errors = 0;
  const deadline = Date.now() + loadSeconds * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline && calls < MAX_CALLS) {
      const t = process.hrtime.bigint();
      try {
        await consumer.invoke('echo', ['x'], { responseTimeout: 5_000 });
        latencies[calls++] = Number(process.hrtime.bigint() - t) / 1000;
      } catch {
        errors++;
      }
    }
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await client.close();
  const sorted = latencies.subarray(0, calls).sort();
  return { rate: calls / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), calls, errors };
}

const upstreamPort = await freePort();
const server = spawn(process.execPath, [SERVER, String(upstreamPort), 'bench', PROTOCOL], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve) => server.stdout!.on('data', (d) => String(d).includes('ready') && resolve()));

const targets: Target[] = [{ name: 'direct', port: upstreamPort, stop: async () => {} }];
try {
  for (const threads of [1, 2]) {
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{ name: 'rpc', address: `127.0.0.1:${port}`, protocol: PROTOCOL, access_log: false, rpc: { routes: [{ cluster: 'echo' }] } }],
      clusters: [{ name: 'echo', hosts: [`127.0.0.1:${upstreamPort}`] }],
    }, threads);
    targets.push({ name: `shuttle ${threads}t`, port, pid: child.pid, stop: () => stop(child) });
  }
  if (process.env.BASELINE) {
    // A/B in one run: the same listener on an older checkout (BASELINE=path), 1 thread.
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{ name: 'rpc', address: `127.0.0.1:${port}`, protocol: PROTOCOL, access_log: false, rpc: { routes: [{ cluster: 'echo' }] } }],
      clusters: [{ name: 'echo', hosts: [`127.0.0.1:${upstreamPort}`] }],
    }, 1, process.env.BASELINE);
    targets.push({ name: 'baseline 1t', port, pid: child.pid, stop: () => stop(child) });
  }
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nlisten rpc\n  bind 127.0.0.1:${port}\n  server s1 127.0.0.1:${upstreamPort}\n`);
    const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForPort(port);
    targets.push({ name: 'haproxy tcp', port, pid: child.pid, stop: () => stop(child) });
  } catch {
    console.error('haproxy not found: skipping it');
  }

  // Warm-up (JIT, pools), as the other benchmarks do: without it the first repetition of a fresh
  // Shuttle also pays V8's compiler threads (~7% of the process's CPU samples in a 6 s profile).
  for (const t of targets) for (const c of CONCURRENCY) await run(t.port, c, WARMUP_SECONDS);
  const results = new Map<string, { rate: number; p50: number; p99: number; cpu: number }[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of CONCURRENCY) {
      for (const t of inTurn(targets, rep)) {
        const before = t.pid ? cpuSeconds(t.pid) : 0;
        const r = await run(t.port, c);
        const cpu = t.pid ? ((cpuSeconds(t.pid) - before) * 1e6) / r.calls : NaN;
        if (r.errors) throw new Error(`${r.errors} failed calls through ${t.name}`);
        const key = `${t.name}|${c}`;
        results.set(key, [...(results.get(key) ?? []), { rate: r.rate, p50: r.p50, p99: r.p99, cpu }]);
        process.stderr.write(`rep ${rep + 1}/${REPS} c=${c} ${t.name.padEnd(11)} ${r.rate.toFixed(0)} calls/s p99 ${r.p99.toFixed(0)}µs\n`);
      }
    }
  }
  const med = (name: string, c: number, k: 'rate' | 'p50' | 'p99' | 'cpu') => median((results.get(`${name}|${c}`) ?? []).map((s) => s[k]).filter((v) => !Number.isNaN(v)));
  console.log(`\n${PROTOCOL === 'dubbo' ? 'Dubbo' : 'SOFA Bolt'} RPC (sofa-rpc-node client and server), ${SECONDS}s per run, medians of ${REPS} runs (node ${process.version})`);
  for (const c of CONCURRENCY) {
    const rows = targets.map((t) => {
      const rate = med(t.name, c, 'rate');
      const cpu = med(t.name, c, 'cpu');
      const hap = targets.some((x) => x.name === 'haproxy tcp') ? med('haproxy tcp', c, 'rate') : NaN;
      const hapCpu = targets.some((x) => x.name === 'haproxy tcp') ? med('haproxy tcp', c, 'cpu') : NaN;
      // Calls per proxy CPU-second, relative to HAProxy's: the efficiency the targets are set in.
      const eff = Number.isNaN(cpu) || Number.isNaN(hapCpu) ? '-' : (hapCpu / cpu).toFixed(2);
      return [t.name, rate.toFixed(0), (rate / med('direct', c, 'rate')).toFixed(2), Number.isNaN(hap) ? '-' : (rate / hap).toFixed(2), med(t.name, c, 'p50').toFixed(0), med(t.name, c, 'p99').toFixed(0), Number.isNaN(cpu) ? '-' : cpu.toFixed(1), eff];
    });
    console.log(`\n### ${c} in flight\n`);
    console.log(table(['target', 'calls/s', 'x direct', 'x haproxy', 'p50 µs', 'p99 µs', 'proxy CPU µs/call', 'x haproxy per CPU-s'], rows));
  }
} finally {
  for (const t of targets) await t.stop();
  server.kill('SIGKILL');
}
