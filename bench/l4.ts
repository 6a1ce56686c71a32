/**
 * L4 benchmark: direct vs Shuttle (1 and 2 threads) vs HAProxy (tcp mode, 1 and 2 threads), all
 * in one run against the same upstream process.
 *
 *   bulk:   one connection uploads BULK_MB to a sink; MB/s
 *   rr@N:   N connections, each sending a 64-byte message and waiting for its echo, for RR_SECONDS;
 *           requests/s, p50/p99 latency
 *
 * For every proxy it also reads the proxy's CPU time (/proc) and reports CPU µs per request (or per
 * MB). Each scenario runs REPS times; medians are reported, with ratios to direct and to HAProxy.
 *
 *   npm run bench:l4            (env: REPS=3 BULK_MB=1024 RR_SECONDS=5 THREADS=1,2; BASELINE=<checkout> adds it)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, median, percentile, spawnUntil, startShuttle, stop, table, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const BULK_MB = Number(process.env.BULK_MB ?? 1024);
const RR_SECONDS = Number(process.env.RR_SECONDS ?? 5);
const RR_MAX_REQUESTS = 5_000_000; // a hard bound on every load loop
const CONCURRENCY = [10, 50];
/** Thread counts of Shuttle (and HAProxy) to run: THREADS=1 halves the run. */
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const MESSAGE = Buffer.alloc(64, 'x');
const UPSTREAM = fileURLToPath(new URL('./support/upstream.ts', import.meta.url));

interface Target {
  name: string;
  echoPort: number;
  sinkPort: number;
  pid?: number;
  stop(): Promise<void>;
}

interface Sample {
  value: number; // MB/s or req/s
  p50?: number;
  p99?: number;
  cpuPerUnit?: number; // µs per request, or CPU ms per MB
}

async function bulk(port: number): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 'b');
  const total = BULK_MB * 1024 * 1024;
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let sent = 0;
    let reply = '';
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.on('connect', pump);
    s.on('data', (d) => (reply += d));
    s.on('end', () => {
      s.end();
      if (Number(reply.trim()) !== total) reject(new Error(`sink saw ${reply.trim()} bytes, sent ${total}`));
      else resolve();
    });
    s.on('error', reject);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return BULK_MB / seconds;
}

async function requestResponse(port: number, connections: number): Promise<{ rate: number; p50: number; p99: number; count: number }> {
  const latencies = new Float64Array(RR_MAX_REQUESTS);
  let count = 0;
  const deadline = Date.now() + RR_SECONDS * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: connections }, () => new Promise<void>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let pending = 0;
    let sentAt = 0n;
    const send = () => {
      if (Date.now() >= deadline || count >= RR_MAX_REQUESTS) {
        s.end();
        return resolve();
      }
      pending = MESSAGE.length;
      sentAt = process.hrtime.bigint();
      s.write(MESSAGE);
    };
    s.on('connect', send);
    s.on('data', (d: Buffer) => {
      pending -= d.length;
      if (pending > 0) return;
      latencies[count++] = Number(process.hrtime.bigint() - sentAt) / 1000;
      send();
    });
    s.on('error', reject);
  })));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const sorted = latencies.subarray(0, count).sort();
  return { rate: count / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), count };
}

async function shuttleTarget(threads: number, up: { echo: number; sink: number }, checkout?: string): Promise<Target> {
  const [echoPort, sinkPort] = [await freePort(), await freePort()];
  const child = await startShuttle({
    listeners: [
      { name: 'echo', address: `127.0.0.1:${echoPort}`, cluster: 'echo', backlog: 4096 },
      { name: 'sink', address: `127.0.0.1:${sinkPort}`, cluster: 'sink', backlog: 4096 },
    ],
    clusters: [
      { name: 'echo', hosts: [`127.0.0.1:${up.echo}`] },
      { name: 'sink', hosts: [`127.0.0.1:${up.sink}`] },
    ],
  }, threads, checkout);
  return { name: `${checkout ? 'baseline' : 'shuttle'} ${threads}t`, echoPort, sinkPort, pid: child.pid, stop: () => stop(child) };
}

async function haproxyTarget(threads: number, up: { echo: number; sink: number }): Promise<Target | undefined> {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
  } catch {
    console.error('haproxy not found (apt-get install haproxy): skipping it');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-bench-'));
  const [echoPort, sinkPort] = [await freePort(), await freePort()];
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, `
global
  nbthread ${threads}
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen echo
  bind 127.0.0.1:${echoPort}
  server s1 127.0.0.1:${up.echo}
listen sink
  bind 127.0.0.1:${sinkPort}
  server s1 127.0.0.1:${up.sink}
`);
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(echoPort);
  await waitForPort(sinkPort);
  return { name: `haproxy ${threads}t`, echoPort, sinkPort, pid: child.pid, stop: () => stop(child) };
}

async function measure(target: Target, scenario: string): Promise<Sample> {
  const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
  let sample: Sample;
  let units: number;
  if (scenario === 'bulk') {
    const mbps = await bulk(target.sinkPort);
    sample = { value: mbps };
    units = BULK_MB;
  } else {
    const n = Number(scenario.slice(3));
    const r = await requestResponse(target.echoPort, n);
    sample = { value: r.rate, p50: r.p50, p99: r.p99 };
    units = r.count;
  }
  if (target.pid) {
    const cpu = cpuSeconds(target.pid) - cpuBefore;
    sample.cpuPerUnit = scenario === 'bulk' ? (cpu * 1000) / units : (cpu * 1e6) / units;
  }
  return sample;
}

const { child: upstream, line } = await spawnUntil(process.execPath, [UPSTREAM], (l) => l.startsWith('{'));
const up = JSON.parse(line) as { echo: number; sink: number };
const targets: Target[] = [{ name: 'direct', echoPort: up.echo, sinkPort: up.sink, stop: async () => {} }];
try {
  for (const t of THREADS) targets.push(await shuttleTarget(t, up));
  // An A/B in the same run: another checkout (a git worktree of an older commit).
  if (process.env.BASELINE) for (const t of THREADS) targets.push(await shuttleTarget(t, up, process.env.BASELINE));
  for (const t of THREADS) {
    const h = await haproxyTarget(t, up);
    if (h) targets.push(h);
  }
  const scenarios = ['bulk', ...CONCURRENCY.map((c) => `rr@${c}`)];
  const results = new Map<string, Sample[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const scenario of scenarios) {
      for (const target of targets) {
        const s = await measure(target, scenario);
        const key = `${target.name}|${scenario}`;
        results.set(key, [...(results.get(key) ?? []), s]);
        process.stderr.write(`rep ${rep + 1}/${REPS} ${scenario.padEnd(6)} ${target.name.padEnd(11)} ${s.value.toFixed(0)}${s.p99 ? ` p99 ${s.p99.toFixed(0)}µs` : ''}\n`);
      }
    }
  }

  const med = (name: string, scenario: string, f: (s: Sample) => number | undefined) => {
    const vals = (results.get(`${name}|${scenario}`) ?? []).map(f).filter((v): v is number => v !== undefined);
    return vals.length ? median(vals) : NaN;
  };
  const haproxyRef = targets.filter((t) => t.name.startsWith('haproxy')).at(-1)?.name;
  console.log(`\nL4 benchmark — medians of ${REPS} runs; bulk = ${BULK_MB} MiB upload, rr = 64-byte echo for ${RR_SECONDS}s`);
  console.log(`node ${process.version}, ${new Date().toISOString()}\n`);
  for (const scenario of scenarios) {
    const unit = scenario === 'bulk' ? 'MB/s' : 'req/s';
    const rows = targets.map((t) => {
      const v = med(t.name, scenario, (s) => s.value);
      const ratioDirect = v / med('direct', scenario, (s) => s.value);
      const ratioHaproxy = haproxyRef ? v / med(haproxyRef, scenario, (s) => s.value) : NaN;
      const cpu = med(t.name, scenario, (s) => s.cpuPerUnit);
      // Work per CPU-second against HAProxy with as many threads (its CPU per unit over ours).
      const sameThreads = `haproxy ${t.name.split(' ').at(-1)}`;
      const perCpu = med(sameThreads, scenario, (s) => s.cpuPerUnit) / cpu;
      return [
        t.name,
        v.toFixed(0),
        ratioDirect.toFixed(2),
        Number.isNaN(ratioHaproxy) ? '-' : ratioHaproxy.toFixed(2),
        ...(scenario === 'bulk' ? [] : [med(t.name, scenario, (s) => s.p50).toFixed(0), med(t.name, scenario, (s) => s.p99).toFixed(0)]),
        Number.isNaN(cpu) ? '-' : cpu.toFixed(scenario === 'bulk' ? 2 : 1),
        Number.isNaN(perCpu) ? '-' : perCpu.toFixed(2),
      ];
    });
    const headers = ['target', unit, 'x direct', `x ${haproxyRef ?? 'haproxy'}`, ...(scenario === 'bulk' ? [] : ['p50 µs', 'p99 µs']), scenario === 'bulk' ? 'proxy CPU ms/MB' : 'proxy CPU µs/req', 'per CPU-s x haproxy (same threads)'];
    console.log(`### ${scenario}\n\n${table(headers, rows)}\n`);
  }
} finally {
  for (const t of targets) await t.stop();
  await stop(upstream);
}
