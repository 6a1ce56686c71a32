/**
 * HTTP/1.1 keep-alive benchmark with wrk against one fast upstream (nginx `return 200`), in one
 * run: direct, Shuttle (1 and 2 threads), nginx as reverse proxy (1 worker, upstream keepalive),
 * HAProxy in http mode (1 thread), and a plain node:http proxy.
 *
 * Printed per target: req/s, p50/p99 latency, and the proxy's CPU seconds per 10k requests
 * (utime+stime from /proc, all its processes and threads), split into user and kernel time per
 * request, with ratios to nginx and to the node:http baseline. Medians of REPS runs.
 *
 * "shuttle L4 1t" is Shuttle's TCP proxy on the same traffic: the same sockets, reads and writes,
 * no HTTP parsing or routing. It is the floor of what Node's socket layer costs per request here.
 *
 *   npm run bench:http       (env: REPS=3 DURATION=5 CONNECTIONS=10,50 THREADS=1,2 WRK_THREADS=1)
 *
 * BASELINE=DIR adds "shuttle 1t base": the same Shuttle target run from another checkout (a git
 * worktree of an older commit), measured back to back in the same run. TARGETS=a,b keeps only the
 * targets whose names start with one of these (e.g. TARGETS=shuttle\ 1t for an A/B).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSplit, freePort, has, inTurn, median, processFamily, spawnUntil, startNginx, startShuttle, stop, table, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const DURATION = Number(process.env.DURATION ?? 5);
const CONNECTIONS = (process.env.CONNECTIONS ?? '10,50').split(',').map(Number);
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const WRK_THREADS = process.env.WRK_THREADS ?? '1';
const NODE_PROXY = fileURLToPath(new URL('./support/node-proxy.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shuttle-http-bench-'));

interface Target {
  name: string;
  port: number;
  /** Processes whose CPU time counts (the proxy's). */
  pids: () => number[];
  stop(): Promise<void>;
}

const nginx = (name: string, body: (port: number) => string) => startNginx(dir, name, body);

async function targets(upstreamPort: number): Promise<Target[]> {
  const out: Target[] = [{ name: 'direct', port: upstreamPort, pids: () => [], stop: async () => {} }];

  for (const threads of THREADS) {
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{
        name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }],
      }],
      clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstreamPort}`] }],
    }, threads);
    out.push({ name: `shuttle ${threads}t`, port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  if (process.env.BASELINE) {
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{
        name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }],
      }],
      clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstreamPort}`] }],
    }, 1, process.env.BASELINE);
    out.push({ name: 'shuttle 1t base', port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  {
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{ name: 'l4', address: `127.0.0.1:${port}`, protocol: 'tcp', access_log: false, backlog: 4096, cluster: 'up' }],
      clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstreamPort}`] }],
    }, 1);
    out.push({ name: 'shuttle L4 1t', port, pids: () => [child.pid!], stop: () => stop(child) });
  }

  if (has('nginx')) {
    const { port, child } = await nginx('proxy', (p) => `
  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${p} backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`);
    out.push({ name: 'nginx 1w', port, pids: () => processFamily(child.pid!), stop: () => stop(child) });
  } else console.error('nginx not found (apt-get install nginx-light): skipping it');

  if (has('haproxy')) {
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
listen web
  bind 127.0.0.1:${port}
  http-reuse always
  server s1 127.0.0.1:${upstreamPort}
`);
    const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForPort(port);
    out.push({ name: 'haproxy 1t', port, pids: () => [child.pid!], stop: () => stop(child) });
  } else console.error('haproxy not found: skipping it');

  const nodePort = await freePort();
  const { child: nodeChild } = await spawnUntil(process.execPath, [NODE_PROXY, String(nodePort), String(upstreamPort)], (l) => l === 'ready');
  out.push({ name: 'node:http', port: nodePort, pids: () => [nodeChild.pid!], stop: () => stop(nodeChild) });
  return out;
}

interface Sample { rps: number; p50: number; p99: number; cpuPer10k: number; userUs: number; sysUs: number }

function toMicros(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1 : m[2] === 'ms' ? 1000 : 1e6);
}

function wrk(port: number, connections: number): { rps: number; p50: number; p99: number; requests: number } {
  const out = execFileSync('wrk', ['-t', WRK_THREADS, '-c', String(connections), '-d', `${DURATION}s`, '--latency', `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: (DURATION + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = toMicros(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = toMicros(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (errors) throw new Error(`wrk saw ${errors[1]} non-2xx responses on port ${port}`);
  return { rps, p50, p99, requests };
}

if (!has('wrk') || !has('nginx')) {
  console.error('this benchmark needs wrk and nginx: apt-get install -y wrk nginx-light haproxy');
  process.exit(1);
}

const upstream = await nginx('upstream', (p) => `
  server {
    listen 127.0.0.1:${p} backlog=4096;
    location / { return 200 "hello from the upstream\\n"; }
  }`);
const wanted = process.env.TARGETS?.split(',');
const started = await targets(upstream.port);
const all = started.filter((t) => !wanted || t.name === 'direct' || wanted.some((w) => t.name.startsWith(w)));
for (const t of started) if (!all.includes(t)) await t.stop();
const results = new Map<string, Sample[]>();
try {
  for (const t of all) wrk(t.port, 10); // warm-up (JIT, pools)
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of CONNECTIONS) {
      for (const t of inTurn(all, rep)) {
        const pids = t.pids();
        const cpu = () => pids.reduce((n, p) => { const s = cpuSplit(p); return { user: n.user + s.user, sys: n.sys + s.sys }; }, { user: 0, sys: 0 });
        const before = cpu();
        const r = wrk(t.port, c);
        const after = cpu();
        const user = after.user - before.user;
        const sys = after.sys - before.sys;
        const sample = {
          rps: r.rps, p50: r.p50, p99: r.p99,
          cpuPer10k: pids.length ? ((user + sys) / r.requests) * 10_000 : NaN,
          userUs: pids.length ? (user / r.requests) * 1e6 : NaN,
          sysUs: pids.length ? (sys / r.requests) * 1e6 : NaN,
        };
        const key = `${t.name}|${c}`;
        results.set(key, [...(results.get(key) ?? []), sample]);
        process.stderr.write(`rep ${rep + 1}/${REPS} c=${c} ${t.name.padEnd(11)} ${r.rps.toFixed(0)} req/s p99 ${r.p99.toFixed(0)}µs cpu/10k ${sample.cpuPer10k.toFixed(3)}s\n`);
      }
    }
  }
} finally {
  for (const t of all) await t.stop();
  await stop(upstream.child);
}

const med = (name: string, c: number, k: keyof Sample) => median((results.get(`${name}|${c}`) ?? []).map((s) => s[k]).filter((v) => !Number.isNaN(v)));
console.log(`\nHTTP/1.1 keep-alive, wrk -t1 -d${DURATION}s, medians of ${REPS} runs (node ${process.version}, ${new Date().toISOString()})`);
for (const c of CONNECTIONS) {
  const rows = all.map((t) => {
    const rps = med(t.name, c, 'rps');
    const cpu = med(t.name, c, 'cpuPer10k');
    const perCpuSecond = 10_000 / cpu;
    const ref = (name: string, f: (n: string) => number) => (all.some((x) => x.name === name) ? f(name) : NaN);
    const nginxEff = ref('nginx 1w', (n) => 10_000 / med(n, c, 'cpuPer10k'));
    const nodeEff = ref('node:http', (n) => 10_000 / med(n, c, 'cpuPer10k'));
    return [
      t.name,
      rps.toFixed(0),
      med(t.name, c, 'p50').toFixed(0),
      med(t.name, c, 'p99').toFixed(0),
      Number.isNaN(cpu) ? '-' : cpu.toFixed(3),
      Number.isNaN(cpu) ? '-' : med(t.name, c, 'userUs').toFixed(1),
      Number.isNaN(cpu) ? '-' : med(t.name, c, 'sysUs').toFixed(1),
      Number.isNaN(cpu) ? '-' : perCpuSecond.toFixed(0),
      Number.isNaN(cpu) ? '-' : (perCpuSecond / nginxEff).toFixed(2),
      Number.isNaN(cpu) ? '-' : (perCpuSecond / nodeEff).toFixed(2),
      (rps / ref('nginx 1w', (n) => med(n, c, 'rps'))).toFixed(2),
    ];
  });
  console.log(`\n### ${c} connections\n`);
  console.log(table(['target', 'req/s', 'p50 µs', 'p99 µs', 'CPU s/10k req', 'user µs/req', 'kernel µs/req', 'req per CPU-s', 'x nginx (per CPU-s)', 'x node:http (per CPU-s)', 'x nginx (req/s)'], rows));
}
