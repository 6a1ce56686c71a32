/**
 * Connection rate: a new connection for every request, through Shuttle (handoff and reuseport
 * modes, 1 and 2 worker threads), nginx (1 worker) and HAProxy (1 thread), in one run.
 *
 *   http-close: wrk with `Connection: close` (the proxy closes after each response; its upstream
 *               connections are kept alive: nginx `keepalive 64`, HAProxy `http-reuse always`,
 *               Shuttle's pool). Upstream: nginx `return 200`.
 *   tcp-close:  C loops, each connect, send 64 bytes, read the 64-byte echo, half-close, wait for
 *               the proxy's close, repeat (the benchmark process is the client). The proxy opens
 *               an upstream connection per client connection. Upstream: a Node echo server.
 *               nginx serves this with its stream module (libnginx-mod-stream), if installed.
 *
 * Per target: connections/s, proxy CPU µs per connection (utime+stime of every process and thread
 * of the proxy, /proc), connections per proxy CPU-second with the ratio to nginx's, and for
 * Shuttle the main thread's share (/proc/PID/task/PID/stat): in handoff mode the main thread is
 * the acceptor, so its µs per connection is the acceptor's cost and 1e6 / that is what one
 * acceptor could accept per second if it did nothing else. Medians of REPS runs.
 *
 *   npm run bench:conn       (env: REPS=3 DURATION=4 CONNECTIONS=10 SCENARIOS=http-close,tcp-close
 *                             TARGETS=shuttle,nginx,haproxy,floor THREADS=1,2)
 *
 * "node server floor" (http-close only) is not a proxy: a bare Node `net` server that answers and
 * closes, i.e. what Node's sockets alone cost per connection, for reading Shuttle's figures.
 *
 * BASELINE=DIR adds "... base" targets: the same Shuttle targets run from another checkout (a git
 * worktree of an older commit), for an A/B in one run (with e.g. THREADS=1 TARGETS=shuttle,nginx).
 *
 * On a bigger machine, give the proxy more threads and the client more: e.g.
 * `THREADS=1,4,8 CONNECTIONS=64 WRK_THREADS=4 npm run bench:conn`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, hardFileLimit, has, inTurn, median, NGINX_STREAM_MODULE, processFamily, spawnUntil, startNginx, startShuttleWith, stop, table, threadCpuSeconds, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const DURATION = Number(process.env.DURATION ?? 4);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const WRK_THREADS = Number(process.env.WRK_THREADS ?? 1);
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const SCENARIOS = (process.env.SCENARIOS ?? 'http-close,tcp-close').split(',') as Scenario[];
const WANTED = (process.env.TARGETS ?? 'shuttle,nginx,haproxy,floor').split(',');
const MAX_TCP_CONNECTIONS = 2_000_000; // a hard bound on the client loop
const NOFILE = Math.min(65536, hardFileLimit());
const MESSAGE = Buffer.alloc(64, 'x');
const UPSTREAM = fileURLToPath(new URL('./support/upstream.ts', import.meta.url));
const NODE_FLOOR = fileURLToPath(new URL('./support/node-close-server.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shuttle-conn-bench-'));

type Scenario = 'http-close' | 'tcp-close';
interface Endpoint { port: number; pids: () => number[] }
interface Target {
  name: string;
  /** Shuttle: the process whose main thread (tid = pid) is the acceptor in handoff mode. */
  shuttlePid?: number;
  endpoints: Partial<Record<Scenario, Endpoint>>;
  stop(): Promise<void>;
}
interface Sample { rate: number; cpuUs: number; mainUs: number; mainUtil: number; errors: number }

async function shuttleTarget(threads: number, balance: 'handoff' | 'reuseport', up: { http: number; echo: number }, checkout?: string): Promise<Target> {
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  const { child } = await startShuttleWith({
    listeners: [
      {
        name: 'web', address: `127.0.0.1:${httpPort}`, protocol: 'http', access_log: false, backlog: 4096,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'web' }] }],
      },
      { name: 'l4', address: `127.0.0.1:${tcpPort}`, protocol: 'tcp', access_log: false, backlog: 4096, cluster: 'echo' },
    ],
    clusters: [{ name: 'web', hosts: [`127.0.0.1:${up.http}`] }, { name: 'echo', hosts: [`127.0.0.1:${up.echo}`] }],
  }, threads, { balance, nofile: NOFILE, checkout });
  const pids = () => [child.pid!];
  return {
    name: `shuttle ${balance} ${threads}t${checkout ? ' base' : ''}`,
    shuttlePid: child.pid,
    endpoints: { 'http-close': { port: httpPort, pids }, 'tcp-close': { port: tcpPort, pids } },
    stop: () => stop(child),
  };
}

async function nginxTarget(up: { http: number; echo: number }): Promise<Target> {
  const http = await startNginx(dir, 'proxy', (p) => `
  upstream up { server 127.0.0.1:${up.http}; keepalive 64; }
  server {
    listen 127.0.0.1:${p} backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`, '', { nofile: NOFILE, workerConnections: 16384 });
  const children: ChildProcess[] = [http.child];
  const endpoints: Target['endpoints'] = { 'http-close': { port: http.port, pids: () => processFamily(http.child.pid!) } };
  if (existsSync(NGINX_STREAM_MODULE)) {
    const l4 = await startNginx(dir, 'stream', () => '', '', {
      main: `load_module ${NGINX_STREAM_MODULE};`, nofile: NOFILE, workerConnections: 16384,
      stream: (p) => `server { listen 127.0.0.1:${p} backlog=4096; proxy_pass 127.0.0.1:${up.echo}; }`,
    });
    children.push(l4.child);
    endpoints['tcp-close'] = { port: l4.port, pids: () => processFamily(l4.child.pid!) };
  } else console.error(`nginx stream module missing (${NGINX_STREAM_MODULE}; apt-get install libnginx-mod-stream): no nginx tcp-close baseline`);
  return { name: 'nginx 1w', endpoints, stop: async () => { for (const c of children) await stop(c); } };
}

async function haproxyTarget(up: { http: number; echo: number }): Promise<Target> {
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, `
global
  nbthread 1
  maxconn ${Math.floor((NOFILE - 100) / 2)}
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
listen web
  mode http
  option http-keep-alive
  bind 127.0.0.1:${httpPort}
  http-reuse always
  server s1 127.0.0.1:${up.http}
listen l4
  mode tcp
  bind 127.0.0.1:${tcpPort}
  server s1 127.0.0.1:${up.echo}
`);
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(httpPort);
  await waitForPort(tcpPort);
  const pids = () => [child.pid!];
  return { name: 'haproxy 1t', endpoints: { 'http-close': { port: httpPort, pids }, 'tcp-close': { port: tcpPort, pids } }, stop: () => stop(child) };
}

/** wrk, a new connection per request; returns completed requests (= connections) and errors. */
function wrkClose(port: number, seconds: number): { count: number; errors: number } {
  const out = execFileSync('wrk', ['-t', String(WRK_THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '-H', 'Connection: close', `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const count = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[3]) + Number(sock[4]) : 0);
  return { count, errors };
}

/** CONNECTIONS loops of connect, send, read the echo, half-close, wait for close. */
async function tcpClose(port: number, seconds: number): Promise<{ count: number; errors: number }> {
  const deadline = Date.now() + seconds * 1000;
  let count = 0;
  let errors = 0;
  const one = () => new Promise<void>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let got = 0;
    let failed = false;
    s.on('connect', () => s.write(MESSAGE));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= MESSAGE.length) s.end();
    });
    s.on('error', () => (failed = true));
    s.on('close', () => {
      if (failed || got < MESSAGE.length) errors++;
      else count++;
      resolve();
    });
  });
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < deadline && count + errors < MAX_TCP_CONNECTIONS) await one();
  }));
  return { count, errors };
}

async function measure(t: Target, scenario: Scenario, seconds: number): Promise<Sample | undefined> {
  const ep = t.endpoints[scenario];
  if (!ep) return undefined;
  const pids = ep.pids();
  const cpu = () => pids.reduce((n, p) => n + cpuSeconds(p), 0);
  const main = () => (t.shuttlePid ? threadCpuSeconds(t.shuttlePid, t.shuttlePid) : 0);
  const [c0, m0, w0] = [cpu(), main(), process.hrtime.bigint()];
  const r = scenario === 'http-close' ? wrkClose(ep.port, seconds) : await tcpClose(ep.port, seconds);
  const [c1, m1, w1] = [cpu(), main(), process.hrtime.bigint()];
  const wall = Number(w1 - w0) / 1e9;
  return {
    rate: r.count / wall,
    cpuUs: ((c1 - c0) * 1e6) / r.count,
    mainUs: t.shuttlePid ? ((m1 - m0) * 1e6) / r.count : NaN,
    mainUtil: t.shuttlePid ? (m1 - m0) / wall : NaN,
    errors: r.errors,
  };
}

if (!has('wrk') || !has('nginx')) {
  console.error('this benchmark needs wrk and nginx: apt-get install -y wrk nginx-light haproxy');
  process.exit(1);
}

const httpUp = await startNginx(dir, 'upstream', (p) => `
  server {
    listen 127.0.0.1:${p} backlog=4096;
    location / { return 200 "hello from the upstream\\n"; }
  }`, '', { nofile: NOFILE, workerConnections: 16384 });
const { child: echoUp, line } = await spawnUntil(process.execPath, [UPSTREAM], (l) => l.startsWith('{'), 15_000, NOFILE);
const up = { http: httpUp.port, echo: (JSON.parse(line) as { echo: number }).echo };
const targets: Target[] = [];
const results = new Map<string, Sample[]>();
try {
  if (WANTED.includes('shuttle')) {
    for (const balance of ['handoff', 'reuseport'] as const) {
      for (const n of THREADS) {
        targets.push(await shuttleTarget(n, balance, up));
        if (process.env.BASELINE) targets.push(await shuttleTarget(n, balance, up, process.env.BASELINE));
      }
    }
  }
  if (WANTED.includes('nginx')) targets.push(await nginxTarget(up));
  if (WANTED.includes('floor')) {
    // Not a proxy: what Node's sockets alone cost to accept, answer and close a connection.
    const port = await freePort();
    const { child } = await spawnUntil(process.execPath, [NODE_FLOOR, String(port)], (l) => l === 'ready', 15_000, NOFILE);
    targets.push({ name: 'node server floor', endpoints: { 'http-close': { port, pids: () => [child.pid!] } }, stop: () => stop(child) });
  }
  if (WANTED.includes('haproxy')) {
    if (has('haproxy')) targets.push(await haproxyTarget(up));
    else console.error('haproxy not found: skipping it');
  }
  for (const t of targets) for (const s of SCENARIOS) await measure(t, s, 1); // warm-up (JIT, pools)
  for (let rep = 0; rep < REPS; rep++) {
    for (const scenario of SCENARIOS) {
      for (const t of inTurn(targets, rep)) {
        const s = await measure(t, scenario, DURATION);
        if (!s) continue;
        const key = `${t.name}|${scenario}`;
        results.set(key, [...(results.get(key) ?? []), s]);
        process.stderr.write(`rep ${rep + 1}/${REPS} ${scenario} ${t.name.padEnd(22)} ${s.rate.toFixed(0)} conn/s, ${s.cpuUs.toFixed(1)} µs CPU/conn${t.shuttlePid ? `, main thread ${s.mainUs.toFixed(1)} µs/conn (${(s.mainUtil * 100).toFixed(0)}%)` : ''}${s.errors ? `, ${s.errors} errors` : ''}\n`);
      }
    }
  }
} finally {
  for (const t of targets) await t.stop();
  await stop(echoUp);
  await stop(httpUp.child);
}

const med = (name: string, scenario: Scenario, k: keyof Sample) => {
  const v = (results.get(`${name}|${scenario}`) ?? []).map((s) => s[k]).filter((x) => !Number.isNaN(x));
  return v.length ? median(v) : NaN;
};
const f = (v: number, d = 0) => (Number.isNaN(v) ? '-' : v.toFixed(d));
console.log(`\nConnection rate: a new connection per request; ${CONNECTIONS} concurrent clients, ${DURATION}s per run, medians of ${REPS} runs (node ${process.version}, ${new Date().toISOString()})`);
for (const scenario of SCENARIOS) {
  const nginxRate = med('nginx 1w', scenario, 'rate');
  const nginxEff = 1e6 / med('nginx 1w', scenario, 'cpuUs');
  const rows = targets.filter((t) => results.has(`${t.name}|${scenario}`)).map((t) => {
    const eff = 1e6 / med(t.name, scenario, 'cpuUs');
    const mainUs = med(t.name, scenario, 'mainUs');
    return [
      t.name, f(med(t.name, scenario, 'rate')), f(med(t.name, scenario, 'rate') / nginxRate, 2),
      f(med(t.name, scenario, 'cpuUs'), 1), f(eff), f(eff / nginxEff, 2),
      f(mainUs, 1), f(med(t.name, scenario, 'mainUtil') * 100), t.name.includes('handoff') ? f(1e6 / mainUs) : '-',
      f(med(t.name, scenario, 'errors')),
    ];
  });
  console.log(`\n### ${scenario}\n`);
  console.log(table(['target', 'conn/s', 'x nginx (conn/s)', 'proxy CPU µs/conn', 'conn per CPU-s', 'x nginx (per CPU-s)', 'main thread µs/conn', 'main thread busy %', 'one acceptor max conn/s', 'errors'], rows));
}
console.log('\nTargets: conn per CPU-s ≥ 0.8× nginx (reuseport); ≥ 10,000 conn/s through one acceptor (handoff).');
