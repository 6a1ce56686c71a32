/**
 * HTTP/2 (h2c on both sides) with h2load against one fast upstream (nginx `return 200` over h2c),
 * in one run: direct, Shuttle (1 thread), nginx (grpc_pass: its only HTTP/2 upstream module),
 * HAProxy (proto h2 both sides, 1 thread) and a plain node:http2 proxy.
 *
 * Printed per target: req/s, p50/p99 (from h2load's per-request log), the proxy's CPU µs per
 * request (utime+stime of all its processes and threads, from /proc), and ratios of requests per
 * CPU-second to HAProxy and to the node:http2 proxy. Medians of REPS runs.
 *
 *   npm run bench:h2        (env: REPS=3 DURATION=5 CONNECTIONS=10 STREAMS=10)
 *
 * BASELINE=DIR adds "shuttle base": the same Shuttle target run from another checkout (a git
 * worktree of an older commit), measured in the same run. TARGETS=a,b keeps only the targets whose
 * names start with one of these (e.g. TARGETS=shuttle,haproxy for an A/B beside HAProxy).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSplit, freePort, inTurn, median, processFamily, spawnUntil, startNginx, startShuttle, stop, table, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const DURATION = Number(process.env.DURATION ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const STREAMS = Number(process.env.STREAMS ?? 10);
const NODE_PROXY = fileURLToPath(new URL('./support/node-h2-proxy.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-bench-'));

interface Target { name: string; port: number; pids: () => number[]; stop(): Promise<void> }

const nginx = (name: string, body: (port: number) => string) => startNginx(dir, name, body);

const upstream = await nginx('upstream', (p) => `server { listen 127.0.0.1:${p} http2 backlog=4096; location / { return 200 "hello from the upstream\\n"; } }`);

async function targets(): Promise<Target[]> {
  const out: Target[] = [{ name: 'direct', port: upstream.port, pids: () => [], stop: async () => {} }];
  for (const [name, checkout] of [['shuttle 1t', undefined], ['shuttle base', process.env.BASELINE]] as const) {
    if (name === 'shuttle base' && checkout === undefined) continue;
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{ name: 'h2', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096, http: { codec: 'http2' }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up' }] }] }],
      clusters: [{ name: 'up', protocol: 'http2', hosts: [`127.0.0.1:${upstream.port}`], http2: { max_connections: 1, max_concurrent_streams: 1000 } }],
    }, 1, checkout);
    out.push({ name, port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  {
    const { port, child } = await nginx('proxy', (p) => `upstream up { server 127.0.0.1:${upstream.port}; keepalive 64; }
server { listen 127.0.0.1:${p} http2 backlog=4096; location / { grpc_pass grpc://up; } }`);
    out.push({ name: 'nginx 1w', port, pids: () => processFamily(child.pid!), stop: () => stop(child) });
  }
  {
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen h2
  bind 127.0.0.1:${port} proto h2
  http-reuse always
  server s1 127.0.0.1:${upstream.port} proto h2
`);
    const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForPort(port);
    out.push({ name: 'haproxy 1t', port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  {
    const port = await freePort();
    const { child } = await spawnUntil(process.execPath, [NODE_PROXY, String(port), String(upstream.port)], (l) => l === 'ready');
    out.push({ name: 'node:http2', port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  return out;
}

interface Sample { rps: number; p50: number; p99: number; cpuUs: number; sysUs: number; requests: number }

function h2load(port: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; requests: number }> {
  const log = join(dir, `h2load-${port}.log`);
  return new Promise((resolve, reject) => {
    execFile('h2load', ['-c', String(CONNECTIONS), '-m', String(STREAMS), '-D', String(seconds), '--log-file', log, `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: (seconds + 30) * 1000, maxBuffer: 1 << 24 }, (err, stdout) => {
      if (err) return reject(err);
      const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
      if (!done || Number(done[3]) > 0) return reject(new Error(`h2load failures on port ${port}:\n${stdout}`));
      const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout)?.[1]);
      // --log-file: start time, status, duration in µs, one request per line.
      const durations = readFileSync(log, 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[2])).filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
      const at = (p: number) => durations[Math.min(durations.length - 1, Math.floor(p * durations.length))];
      resolve({ rps, p50: at(0.5), p99: at(0.99), requests: Number(done[2]) });
    });
  });
}

const wanted = process.env.TARGETS?.split(',');
// (HAProxy and node:http2 always run: the ratios are to them.)
const started = await targets();
const all = started.filter((t) => wanted === undefined || t.name === 'haproxy 1t' || t.name === 'node:http2' || wanted.some((w) => t.name.startsWith(w)));
for (const t of started) if (!all.includes(t)) await t.stop();
const results = new Map<string, Sample[]>();
try {
  for (const t of all) await h2load(t.port, 2); // warm-up (JIT, pools)
  for (let rep = 0; rep < REPS; rep++) {
    for (const t of inTurn(all, rep)) {
      const pids = t.pids();
      const cpu = () => pids.reduce((n, p) => {
        try {
          const c = cpuSplit(p);
          return { user: n.user + c.user, sys: n.sys + c.sys };
        } catch {
          throw new Error(`${t.name}: process ${p} is gone`);
        }
      }, { user: 0, sys: 0 });
      const before = cpu();
      const r = await h2load(t.port, DURATION);
      const after = cpu();
      const used = after.user + after.sys - before.user - before.sys;
      const perRequest = (s: number) => (pids.length ? (s / r.requests) * 1e6 : NaN);
      const s: Sample = { ...r, cpuUs: perRequest(used), sysUs: perRequest(after.sys - before.sys) };
      results.set(t.name, [...(results.get(t.name) ?? []), s]);
      process.stderr.write(`rep ${rep + 1}/${REPS} ${t.name.padEnd(11)} ${r.rps.toFixed(0)} req/s p99 ${r.p99}µs cpu ${s.cpuUs.toFixed(1)}µs/req\n`);
    }
  }
} finally {
  for (const t of all) await t.stop();
  await stop(upstream.child);
}

const med = (name: string, k: keyof Sample) => median((results.get(name) ?? []).map((s) => s[k]).filter((v) => !Number.isNaN(v)));
const perCpuSecond = (name: string) => 1e6 / med(name, 'cpuUs');
console.log(`\nHTTP/2 h2c, h2load -c${CONNECTIONS} -m${STREAMS} -D${DURATION}, medians of ${REPS} runs (node ${process.version}, ${new Date().toISOString()})\n`);
// The kernel's share (sys: mostly loopback TCP, the same work for every proxy) varies a lot from
// machine to machine and day to day, and with it every ratio: both columns are printed.
console.log(table(['target', 'req/s', 'p50 µs', 'p99 µs', 'CPU µs/req', 'of it sys', 'req per CPU-s', 'x haproxy (per CPU-s)', 'x node:http2 (per CPU-s)'], all.map((t) => {
  const cpu = med(t.name, 'cpuUs');
  return [
    t.name, med(t.name, 'rps').toFixed(0), med(t.name, 'p50').toFixed(0), med(t.name, 'p99').toFixed(0),
    Number.isNaN(cpu) ? '-' : cpu.toFixed(1),
    Number.isNaN(cpu) ? '-' : med(t.name, 'sysUs').toFixed(1),
    Number.isNaN(cpu) ? '-' : perCpuSecond(t.name).toFixed(0),
    Number.isNaN(cpu) ? '-' : (perCpuSecond(t.name) / perCpuSecond('haproxy 1t')).toFixed(2),
    Number.isNaN(cpu) ? '-' : (perCpuSecond(t.name) / perCpuSecond('node:http2')).toFixed(2),
  ];
})));
