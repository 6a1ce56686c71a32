/**
 * Memory per idle connection, and a bounded soak, in one run.
 *
 * Idle: IDLE connections held open by the benchmark process, each idle after one exchange:
 *   http: one keep-alive HTTP/1.1 request (upstream: nginx `return 200`); the proxy keeps the
 *         client connection open and its upstream connections pooled.
 *   bolt: a long-lived SOFA Bolt connection after one heartbeat (a raw v1 heartbeat request
 *         frame). Shuttle's bolt listener answers heartbeats itself and holds no upstream
 *         connection per client; the baselines are byte pipes (nginx stream, HAProxy tcp mode) to
 *         a Node echo server, so each also holds one upstream connection per client.
 * Targets: Shuttle (handoff and reuseport, 1 and 2 worker threads), nginx (1 worker), HAProxy
 * (1 thread), and "node server floor", not a proxy: a bare Node `net` server that answers and
 * holds the connections (bench/support/node-idle-server.ts), what Node's sockets alone cost; each measurement starts a fresh proxy (RSS rarely falls after connections close, so
 * a reused process would hide the cost). Per connection: (RSS with the connections open − RSS
 * before them) / IDLE, summed over the proxy's processes (nginx: master and worker), from /proc,
 * after a warm-up under load (see load(): what grows once with load is not charged to the
 * connections);
 * for Shuttle also the growth of its workers' V8 heaps (admin /metrics) per connection: the rest
 * is native (libuv handles, Node's socket wraps, malloc) and V8 heap slack.
 * The Bolt scenario opens min(IDLE, (open-file hard limit − 200) / 2) connections: a byte pipe
 * needs two descriptors per client; HAProxy, which reserves two per connection, gets at most
 * (limit − 100) / 2 − 50 (9,900 under this machine's hard limit of 20,000, which root cannot raise
 * here). Figures are per connection, so the counts compare.
 *
 * Soak: wrk against Shuttle (SOAK_THREADS threads, handoff mode), alternating keep-alive and
 * `Connection: close` phases until SOAK_REQUESTS requests (or SOAK_SECONDS); RSS (all threads)
 * and V8 heaps (admin /metrics: shuttle_worker_heap_used_bytes summed over workers, and the main
 * thread's shuttle_nodejs_heap_size_used_bytes) sampled after warm-up and after every phase.
 *
 *   npm run bench:idle       (env: REPS=1 IDLE=10000 SCENARIOS=http,bolt TARGETS=shuttle,nginx,haproxy,floor
 *                             THREADS=1,2 WARMUP_ROUNDS=150 SOAK_REQUESTS=1500000 SOAK_SECONDS=90 SOAK_THREADS=2;
 *                             SOAK_REQUESTS=0 skips it)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, hardFileLimit, has, median, NGINX_STREAM_MODULE, processFamily, rssBytes, spawnUntil, startNginx, startShuttleWith, stop, table, waitForPort } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 1);
const IDLE = Number(process.env.IDLE ?? 10_000);
const SCENARIOS = (process.env.SCENARIOS ?? 'http,bolt').split(',').filter(Boolean) as Scenario[]; // SCENARIOS= : soak only
const WANTED = (process.env.TARGETS ?? 'shuttle,nginx,haproxy,floor').split(',');
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const SOAK_REQUESTS = Number(process.env.SOAK_REQUESTS ?? 1_500_000);
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 90);
const SOAK_THREADS = Number(process.env.SOAK_THREADS ?? 2);
const NOFILE = hardFileLimit();
const BOLT_IDLE = Math.min(IDLE, Math.floor((NOFILE - 200) / 2));
/** HAProxy refuses to start unless 2 × maxconn fits the open-file limit. */
const HAPROXY_MAXCONN = Math.floor((NOFILE - 100) / 2);
const OPENING = 200; // connections being opened at once (below the listen backlog)
const SETTLE_MS = 2_000;
/** Exchanges on each of the 200 warm-up connections before measuring (see load()). */
const WARMUP_ROUNDS = Number(process.env.WARMUP_ROUNDS ?? 150);
const UPSTREAM = fileURLToPath(new URL('./support/upstream.ts', import.meta.url));
const NODE_IDLE_SERVER = fileURLToPath(new URL('./support/node-idle-server.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shuttle-idle-bench-'));

type Scenario = 'http' | 'bolt';
interface Proxy {
  port: number;
  pids: () => number[];
  stop(): Promise<void>;
  /** At most this many connections (HAProxy reserves two descriptors per connection it accepts). */
  maxIdle?: number;
  /** Shuttle: V8 heap in use summed over its workers (admin /metrics). */
  workerHeap?: () => Promise<number>;
}
interface TargetSpec { name: string; start(scenario: Scenario): Promise<Proxy | undefined> }

/** A SOFA Bolt v1 heartbeat request (22 bytes: all lengths 0). */
function boltHeartbeat(id: number): Buffer {
  const b = Buffer.alloc(22);
  b[0] = 1; // proto v1
  b[1] = 1; // type: request
  b.writeUInt16BE(0, 2); // cmd: heartbeat
  b[4] = 1; // ver2
  b.writeUInt32BE(id, 5);
  b[9] = 1; // codec: hessian2
  b.writeInt32BE(3_000, 10); // timeout ms
  return b; // class, header and content lengths: 0
}
const HTTP_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');

/**
 * One request (or heartbeat) on `s` and its whole answer; `s` stays open and idle after it. The
 * socket is connected, or `connect` first.
 */
function exchange(s: net.Socket, scenario: Scenario, id: number, connect = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const fail = (err: Error) => {
      s.destroy();
      reject(err);
    };
    const send = () => s.write(scenario === 'http' ? HTTP_REQUEST : boltHeartbeat(id));
    s.setTimeout(15_000, () => fail(new Error(`no answer on connection ${id}`)));
    s.removeAllListeners('error').on('error', fail);
    s.removeAllListeners('close').on('close', () => fail(new Error(`connection ${id} closed by the proxy`)));
    s.removeAllListeners('data').on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      let done = false;
      if (scenario === 'bolt') done = got.length >= 20;
      else {
        const end = got.indexOf('\r\n\r\n');
        const length = Number(/content-length:\s*(\d+)/i.exec(got.subarray(0, Math.max(0, end)).toString('latin1'))?.[1] ?? NaN);
        if (end >= 0 && !got.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 200')) return fail(new Error(`connection ${id}: ${got.subarray(0, 40)}`));
        done = end >= 0 && got.length >= end + 4 + length;
      }
      if (!done) return;
      s.removeAllListeners('data');
      s.setTimeout(0);
      s.on('data', () => {});
      resolve(s);
    });
    if (connect) s.once('connect', send);
    else send();
  });
}

/** Resolves with the socket once its first exchange is complete; it then stays open and idle. */
function openIdle(port: number, scenario: Scenario, id: number): Promise<net.Socket> {
  return exchange(net.connect({ port, host: '127.0.0.1' }), scenario, id, true);
}

/**
 * Load before measuring: `rounds` more exchanges on each socket. A proxy's memory grows once with
 * load, not with connections (V8's young generation grows to its working size: ~20 MiB of what
 * Shuttle's first 8,000 idle HTTP connections added, measured by mapping, was that and malloc
 * slack, not the connections); a proxy in service has seen load before it holds idle connections.
 */
async function load(sockets: net.Socket[], scenario: Scenario, rounds: number): Promise<void> {
  await Promise.all(sockets.map(async (s, i) => {
    for (let r = 0; r < rounds; r++) await exchange(s, scenario, i);
  }));
}

async function openMany(port: number, scenario: Scenario, n: number): Promise<net.Socket[]> {
  const out: net.Socket[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: OPENING }, async () => {
    while (next < n) {
      const id = next++;
      out.push(await openIdle(port, scenario, id));
    }
  }));
  return out;
}

async function closeAll(sockets: net.Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise<void>((r) => {
    s.removeAllListeners('close');
    s.removeAllListeners('error');
    s.on('error', () => {});
    s.once('close', () => r());
    s.destroy();
  })));
}

const rssOf = (pids: number[]) => pids.reduce((n, p) => n + rssBytes(p), 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function shuttleSpec(threads: number, balance: 'handoff' | 'reuseport', up: { http: number; echo: number }): TargetSpec {
  return {
    name: `shuttle ${balance} ${threads}t`,
    async start(scenario) {
      const port = await freePort();
      const listener = scenario === 'http'
        ? { name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096,
            virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }] }
        : { name: 'rpc', address: `127.0.0.1:${port}`, protocol: 'bolt', access_log: false, backlog: 4096, rpc: { routes: [{ cluster: 'up' }] } };
      const { child, admin } = await startShuttleWith({
        listeners: [listener],
        clusters: [{ name: 'up', hosts: [`127.0.0.1:${scenario === 'http' ? up.http : up.echo}`] }],
      }, threads, { balance, nofile: NOFILE });
      return { port, pids: () => [child.pid!], stop: () => stop(child), workerHeap: () => metric(admin, 'shuttle_worker_heap_used_bytes') };
    },
  };
}

function nginxSpec(up: { http: number; echo: number }, workerConnections = NOFILE - 100): TargetSpec {
  return {
    name: 'nginx 1w',
    async start(scenario) {
      if (scenario === 'bolt' && !existsSync(NGINX_STREAM_MODULE)) return undefined;
      const opts = { nofile: NOFILE, workerConnections };
      const { port, child } = scenario === 'http'
        ? await startNginx(dir, 'proxy', (p) => `
  upstream up { server 127.0.0.1:${up.http}; keepalive 64; }
  server {
    listen 127.0.0.1:${p} backlog=4096;
    keepalive_timeout 300s;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`, '', opts)
        : await startNginx(dir, 'stream', () => '', '', {
          ...opts, main: `load_module ${NGINX_STREAM_MODULE};`,
          stream: (p) => `server { listen 127.0.0.1:${p} backlog=4096; proxy_timeout 300s; proxy_pass 127.0.0.1:${up.echo}; }`,
        });
      return { port, pids: () => processFamily(child.pid!), stop: () => stop(child) };
    },
  };
}

/** Not a proxy: a bare Node server holding the connections (what Node's sockets alone cost). */
function floorSpec(): TargetSpec {
  return {
    name: 'node server floor',
    async start(scenario) {
      const port = await freePort();
      const { child } = await spawnUntil(process.execPath, [NODE_IDLE_SERVER, String(port), scenario], (l) => l === 'ready', 15_000, NOFILE);
      return { port, pids: () => [child.pid!], stop: () => stop(child) };
    },
  };
}

function haproxySpec(up: { http: number; echo: number }): TargetSpec {
  return {
    name: 'haproxy 1t',
    async start(scenario) {
      const port = await freePort();
      const cfg = join(dir, `haproxy-${scenario}.cfg`);
      writeFileSync(cfg, `
global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN}
defaults
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
listen p
  bind 127.0.0.1:${port}
${scenario === 'http' ? `  mode http\n  option http-keep-alive\n  http-reuse always\n  server s1 127.0.0.1:${up.http}` : `  mode tcp\n  server s1 127.0.0.1:${up.echo}`}
`);
      const child: ChildProcess = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
      await waitForPort(port);
      return { port, pids: () => [child.pid!], stop: () => stop(child), maxIdle: HAPROXY_MAXCONN - 50 };
    },
  };
}

/** One fresh proxy, warmed up: RSS before, open n idle connections, settle, RSS after; bytes per connection. */
interface IdleResult { perConn: number; before: number; n: number; heapPerConn: number }

async function idleOnce(spec: TargetSpec, scenario: Scenario): Promise<IdleResult | undefined> {
  const proxy = await spec.start(scenario);
  if (!proxy) return undefined;
  try {
    // Warm-up: a few connections through every worker (code paths compiled, pools made), and
    // load on them (see load()).
    const warm = await openMany(proxy.port, scenario, 200);
    await load(warm, scenario, WARMUP_ROUNDS);
    await closeAll(warm);
    await sleep(500);
    const pids = proxy.pids();
    const n = Math.min(scenario === 'bolt' ? BOLT_IDLE : IDLE, proxy.maxIdle ?? Infinity);
    const heapBefore = (await proxy.workerHeap?.()) ?? NaN;
    const before = rssOf(pids);
    const sockets = await openMany(proxy.port, scenario, n);
    await sleep(SETTLE_MS);
    const after = rssOf(pids);
    const heapAfter = (await proxy.workerHeap?.()) ?? NaN;
    await closeAll(sockets);
    return { perConn: (after - before) / n, before, n, heapPerConn: (heapAfter - heapBefore) / n };
  } finally {
    await proxy.stop();
  }
}

/**
 * nginx allocates (and touches) its connection slots, `worker_connections` of them, at start, so
 * they sit in the "before" RSS: measured here as the RSS of an idle nginx with the benchmark's
 * worker_connections minus one with 256, per slot. An HTTP client holds one slot, a stream one two.
 */
async function nginxSlotBytes(up: { http: number; echo: number }): Promise<number> {
  const rss = async (workerConnections: number) => {
    const p = (await nginxSpec(up, workerConnections).start('http'))!;
    await sleep(300);
    const v = rssOf(p.pids());
    await p.stop();
    return v;
  };
  const small = await rss(256);
  const big = await rss(NOFILE - 100);
  return (big - small) / (NOFILE - 100 - 256);
}

interface SoakSample { label: string; requests: number; rss: number; heap: number; workerHeap: number }

/** The admin's /metrics text, on a connection of its own (no keep-alive race with the admin's idle timeout). */
function metricsText(admin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(`http://${admin}/metrics`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** The sum of a metric's samples (all label sets) in /metrics text. */
function metricIn(text: string, name: string): number {
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length ? values.reduce((a, b) => a + b, 0) : NaN;
}

async function metric(admin: string, name: string): Promise<number> {
  return metricIn(await metricsText(admin), name);
}

function wrkPhase(port: number, seconds: number, close: boolean): number {
  const args = ['-t', '1', '-c', '50', '-d', `${seconds}s`, ...(close ? ['-H', 'Connection: close'] : []), `http://127.0.0.1:${port}/`];
  const out = execFileSync('wrk', args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`soak: wrk saw ${non2xx[1]} non-2xx responses`);
  return Number(/(\d+) requests in/.exec(out)?.[1]);
}

async function soak(upstreamPort: number): Promise<SoakSample[]> {
  const port = await freePort();
  const { child, admin } = await startShuttleWith({
    listeners: [{
      name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096,
      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }],
    }],
    clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstreamPort}`] }],
  }, SOAK_THREADS, { nofile: NOFILE });
  const samples: SoakSample[] = [];
  const sample = async (label: string, requests: number) => {
    const text = await metricsText(admin);
    const s = { label, requests, rss: rssBytes(child.pid!), heap: metricIn(text, 'shuttle_nodejs_heap_size_used_bytes'), workerHeap: metricIn(text, 'shuttle_worker_heap_used_bytes') };
    samples.push(s);
    process.stderr.write(`soak ${label}: ${requests} requests, RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, worker heaps ${(s.workerHeap / 2 ** 20).toFixed(1)} MiB, main heap ${(s.heap / 2 ** 20).toFixed(1)} MiB\n`);
  };
  try {
    let requests = wrkPhase(port, 5, false) + wrkPhase(port, 3, true); // warm-up
    await sample('after warm-up', requests);
    const deadline = Date.now() + SOAK_SECONDS * 1000;
    for (let phase = 1; requests < SOAK_REQUESTS && Date.now() < deadline; phase++) {
      requests += wrkPhase(port, 10, false);
      requests += wrkPhase(port, 2, true);
      await sample(`phase ${phase}`, requests);
    }
  } finally {
    await stop(child);
  }
  return samples;
}

if (!has('nginx')) {
  console.error('this benchmark needs nginx (and wrk for the soak): apt-get install -y nginx-light wrk haproxy libnginx-mod-stream');
  process.exit(1);
}

const httpUp = await startNginx(dir, 'upstream', (p) => `
  server {
    listen 127.0.0.1:${p} backlog=4096;
    keepalive_timeout 300s;
    location / { return 200 "hello from the upstream\\n"; }
  }`, '', { nofile: NOFILE, workerConnections: NOFILE - 100 });
const { child: echoUp, line } = await spawnUntil(process.execPath, [UPSTREAM], (l) => l.startsWith('{'), 15_000, NOFILE);
const up = { http: httpUp.port, echo: (JSON.parse(line) as { echo: number }).echo };
const specs: TargetSpec[] = [];
if (WANTED.includes('shuttle')) for (const balance of ['handoff', 'reuseport'] as const) for (const n of THREADS) specs.push(shuttleSpec(n, balance, up));
if (WANTED.includes('nginx')) specs.push(nginxSpec(up));
if (WANTED.includes('floor')) specs.push(floorSpec());
if (WANTED.includes('haproxy') && has('haproxy')) specs.push(haproxySpec(up));
if (!existsSync(NGINX_STREAM_MODULE)) console.error(`nginx stream module missing (${NGINX_STREAM_MODULE}; apt-get install libnginx-mod-stream): no nginx bolt baseline`);

const results = new Map<string, IdleResult[]>();
let soakSamples: SoakSample[] = [];
let slotBytes = NaN;
try {
  if (SCENARIOS.length > 0 && specs.some((s) => s.name === 'nginx 1w')) slotBytes = await nginxSlotBytes(up);
  for (let rep = 0; rep < REPS; rep++) {
    for (const scenario of SCENARIOS) {
      for (const spec of specs) {
        const r = await idleOnce(spec, scenario);
        if (!r) continue;
        const key = `${spec.name}|${scenario}`;
        results.set(key, [...(results.get(key) ?? []), r]);
        process.stderr.write(`rep ${rep + 1}/${REPS} ${scenario} ${spec.name.padEnd(22)} ${(r.perConn / 1024).toFixed(2)} KiB per idle connection${Number.isNaN(r.heapPerConn) ? '' : ` (worker V8 heap ${(r.heapPerConn / 1024).toFixed(2)} KiB)`} (${r.n} connections, RSS before ${(r.before / 2 ** 20).toFixed(1)} MiB)\n`);
      }
    }
  }
  if (SOAK_REQUESTS > 0 && has('wrk')) soakSamples = await soak(up.http);
} finally {
  await stop(echoUp);
  await stop(httpUp.child);
}

console.log(`\nMemory per idle connection: ${IDLE} HTTP/1.1 keep-alive, ${BOLT_IDLE} Bolt connections; RSS delta / connections after a warm-up under load (${WARMUP_ROUNDS} exchanges on each of 200 connections), medians of ${REPS} runs (node ${process.version}, ${new Date().toISOString()})`);
if (!Number.isNaN(slotBytes)) console.log(`nginx preallocates ${slotBytes.toFixed(0)} bytes per worker_connections slot at start (in its "before" RSS); "nginx 1w" below includes the slots a connection takes (http 1, bolt 2).`);
for (const scenario of SCENARIOS) {
  const slots = scenario === 'http' ? 1 : 2;
  const perOf = (name: string) => {
    const rs = results.get(`${name}|${scenario}`) ?? [];
    return median(rs.map((r) => r.perConn)) + (name === 'nginx 1w' ? slots * slotBytes : 0);
  };
  const ref = perOf('nginx 1w');
  const rows = specs.filter((s) => results.has(`${s.name}|${scenario}`)).map((s) => {
    const rs = results.get(`${s.name}|${scenario}`)!;
    const per = perOf(s.name);
    const heap = median(rs.map((r) => r.heapPerConn));
    return [s.name, rs[0].n, (per / 1024).toFixed(2), Number.isNaN(heap) ? '-' : (heap / 1024).toFixed(2), Number.isNaN(ref) ? '-' : (per / ref).toFixed(2), (median(rs.map((r) => r.before)) / 2 ** 20).toFixed(1), rs.map((r) => (r.perConn / 1024).toFixed(2)).join(' ')];
  });
  console.log(`\n### ${scenario}\n`);
  console.log(table(['target', 'connections', 'KiB per idle conn', 'of which worker V8 heap (KiB)', 'x nginx', 'RSS before (MiB)', 'runs: RSS delta (KiB)'], rows));
}
console.log('\nTarget: idle memory per connection ≤ 2× nginx.');
if (soakSamples.length > 1) {
  const first = soakSamples[0];
  const last = soakSamples[soakSamples.length - 1];
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  console.log(`\n### soak (Shuttle handoff ${SOAK_THREADS}t, wrk -c50 alternating 10 s keep-alive and 2 s Connection: close)\n`);
  console.log(table(['sample', 'requests', 'RSS MiB', 'worker heaps MiB', 'main heap MiB'], soakSamples.map((s) => [s.label, s.requests, mib(s.rss), mib(s.workerHeap), mib(s.heap)])));
  const max = (k: 'rss' | 'workerHeap') => mib(Math.max(...soakSamples.map((s) => s[k])));
  console.log(`\nAfter warm-up → end (${last.requests - first.requests} requests): RSS ${mib(first.rss)} → ${mib(last.rss)} MiB (${((last.rss / first.rss - 1) * 100).toFixed(1)}%, max ${max('rss')}), worker heaps ${mib(first.workerHeap)} → ${mib(last.workerHeap)} MiB (max ${max('workerHeap')}), main heap ${mib(first.heap)} → ${mib(last.heap)} MiB`);
}
