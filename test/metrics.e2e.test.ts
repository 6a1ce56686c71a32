/**
 * /metrics after traffic of every protocol (HTTP/1.1, HTTP/2, gRPC, TCP, Bolt, Dubbo) through the
 * real CLI with 2 worker threads: latency histograms and status codes per listener, cluster and
 * named route are the sums of both workers' shared rows, and agree with the traffic sent and
 * with the access log; the whole text passes `promtool check metrics` (Debian's prometheus).
 */
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBoltServer, boltConsumer, type BoltUpstream } from './support/bolt-upstream.ts';
import { echoClient, echoServer as grpcEchoServer, unary, type EchoServer } from './support/grpc.ts';
import { h2request, httpUpstream, type HttpUpstream } from './support/http.ts';
import { tcpEcho } from './support/load.ts';
import { closedPort, echoServer, type Upstream } from './support/net.ts';
import { histogram, parseSamples, promtoolCheck, promtoolPath, total, type Sample } from './support/prometheus.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const dubbo = require('dubbo-remoting');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

const PROMTOOL = promtoolPath();
const cleanup: (() => Promise<unknown> | void)[] = [];
let shuttle: ShuttleProcess;
let admin: string;
let text: string;
let samples: Sample[];
let web: HttpUpstream;

/** One HTTP/1.1 request on a fresh connection (so the acceptor spreads them over both workers). */
function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

const SENT = { ok: 40, notFound: 10, retried503: 6, slow: 3, direct: 10, down: 5, h2: 20, grpc: 20, tcp: 10, bolt: 20, dubbo: 20 };

beforeAll(async () => {
  web = await httpUpstream('web', (req, res) => {
    const status = /^\/api\/status\/(\d{3})$/.exec(req.url ?? '');
    if (req.url === '/api/slow') return void setTimeout(() => res.end('late'), 2_000);
    res.statusCode = status ? Number(status[1]) : 200;
    res.end('web');
  });
  cleanup.push(() => web.close());
  const grpcServer: EchoServer = await grpcEchoServer('g');
  cleanup.push(() => grpcServer.close());
  const echo: Upstream = await echoServer();
  cleanup.push(() => echo.close());
  const bolt: BoltUpstream = await startBoltServer('b');
  cleanup.push(() => void bolt.child.kill('SIGKILL'));
  const dubboPort = await closedPort();
  const dubboServer = new RpcServer({ logger: quiet, port: dubboPort, protocol: dubbo });
  dubboServer.addService({ interfaceName: 'com.example.Echo', version: '1.0.0' }, { async echo(x: string) { return `d:${x}`; } });
  await dubboServer.start();
  cleanup.push(() => dubboServer.close());
  const down = await closedPort();

  shuttle = startShuttle(testConfig({
    listeners: [
      {
        name: 'http', address: '127.0.0.1:0', protocol: 'http',
        virtual_hosts: [{
          name: 'all', domains: ['*'], routes: [
            { name: 'slow', match: { path: '/api/slow' }, cluster: 'web', timeout: '50ms' },
            { name: 'api', match: { prefix: '/api/' }, cluster: 'web', retry_policy: { retry_on: ['5xx'], num_retries: 1 } },
            { name: 'grpc', match: { prefix: '/shuttle.test.Echo/' }, cluster: 'grpc' },
            { match: { prefix: '/down/' }, cluster: 'down' },
            { match: { path: '/direct' }, direct_response: { status: 200, body: 'direct\n' } },
          ],
        }],
      },
      { name: 'tcp', address: '127.0.0.1:0', cluster: 'echo' },
      { name: 'bolt', address: '127.0.0.1:0', protocol: 'bolt', rpc: { routes: [{ name: 'bolt-echo', match: { service: 'com.example.Echo:1.0' }, cluster: 'bolt' }] } },
      { name: 'dubbo', address: '127.0.0.1:0', protocol: 'dubbo', rpc: { routes: [{ name: 'dubbo-echo', match: { service: 'com.example.Echo' }, cluster: 'dubbo' }] } },
    ],
    clusters: [
      { name: 'web', hosts: [web.address] },
      { name: 'grpc', protocol: 'http2', hosts: [grpcServer.address] },
      { name: 'down', hosts: [`127.0.0.1:${down}`] },
      { name: 'echo', hosts: [echo.address] },
      { name: 'bolt', hosts: [`127.0.0.1:${bolt.port}`] },
      { name: 'dubbo', hosts: [`127.0.0.1:${dubboPort}`] },
    ],
  }), { threads: 2 });
  cleanup.push(() => shuttle.stop());
  const ready = await shuttle.ready();
  admin = ready.admin;
  const port = ready.listeners.http.port;

  // HTTP/1.1, each request on its own connection.
  const codes: number[] = [];
  for (let i = 0; i < SENT.ok; i++) codes.push(await get(port, `/api/ok/${i}`));
  for (let i = 0; i < SENT.notFound; i++) codes.push(await get(port, '/api/status/404'));
  for (let i = 0; i < SENT.retried503; i++) codes.push(await get(port, '/api/status/503'));
  for (let i = 0; i < SENT.slow; i++) codes.push(await get(port, '/api/slow'));
  for (let i = 0; i < SENT.direct; i++) codes.push(await get(port, '/direct'));
  for (let i = 0; i < SENT.down; i++) codes.push(await get(port, '/down/x'));
  expect(codes.filter((c) => c === 200)).toHaveLength(SENT.ok + SENT.direct);
  expect(codes.filter((c) => c === 503)).toHaveLength(SENT.retried503 + SENT.down);
  expect(codes.filter((c) => c === 504)).toHaveLength(SENT.slow);
  // HTTP/2 (h2c, prior knowledge), on two connections.
  for (const half of [0, 1]) {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    for (let i = 0; i < SENT.h2 / 2; i++) expect((await h2request(session, { ':path': `/api/h2/${half}/${i}` })).status).toBe(200);
    session.close();
  }
  // gRPC, on two channels.
  for (const half of [0, 1]) {
    const client = echoClient(`127.0.0.1:${port}`, { 'grpc.use_local_subchannel_pool': 1 });
    for (let i = 0; i < SENT.grpc / 2; i++) expect((await unary(client, { text: `m${i}` })).msg.text).toBe(`g:m${i}`);
    client.close();
  }
  // TCP, one connection each.
  for (let i = 0; i < SENT.tcp; i++) await tcpEcho(ready.listeners.tcp.port);
  // Bolt and Dubbo with sofa-rpc-node.
  const rpcClients: { close(): Promise<void> }[] = [];
  cleanup.push(async () => {
    for (const c of rpcClients) await c.close().catch(() => {});
  });
  const boltCall = await boltConsumer(ready.listeners.bolt.port, rpcClients);
  for (let i = 0; i < SENT.bolt; i++) expect(await boltCall('echo', [`x${i}`])).toBe(`b:x${i}`);
  const dubboClient = new RpcClient({ logger: quiet, protocol: dubbo });
  rpcClients.push(dubboClient);
  await dubboClient.ready();
  const consumer = dubboClient.createConsumer({ interfaceName: 'com.example.Echo', version: '1.0.0', serverHost: `127.0.0.1:${ready.listeners.dubbo.port}` });
  await consumer.ready();
  for (let i = 0; i < SENT.dubbo; i++) expect(await consumer.invoke('echo', [`y${i}`], { responseTimeout: 5_000 })).toBe(`d:y${i}`);

  // Every HTTP request has its access line (written after it is counted): then scrape.
  const httpTotal = SENT.ok + SENT.notFound + SENT.retried503 + SENT.slow + SENT.direct + SENT.down + SENT.h2 + SENT.grpc;
  await eventually(async () => shuttle.logs.filter((l) => l.msg === 'access' && l.listener === 'http').length, (n) => n === httpTotal, 10_000);
  text = await (await fetch(`${admin}/metrics`)).text();
  samples = parseSamples(text);
}, 120_000);

afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('metrics after traffic of every protocol, 2 workers', () => {
  it('counts each listener\'s requests and calls in its latency histogram and by status code', () => {
    const httpTotal = SENT.ok + SENT.notFound + SENT.retried503 + SENT.slow + SENT.direct + SENT.down + SENT.h2 + SENT.grpc;
    const rqTime = (listener: string) => histogram(samples, 'shuttle_listener_downstream_rq_time_seconds', { listener });
    expect(rqTime('http').count).toBe(httpTotal);
    expect(rqTime('bolt').count).toBe(SENT.bolt);
    expect(rqTime('dubbo').count).toBe(SENT.dubbo);
    expect(rqTime('tcp').count).toBe(0); // connections, not requests
    const completed = (labels: Record<string, string>) => total(samples, 'shuttle_listener_downstream_rq_completed_total', labels);
    expect(completed({ listener: 'http' })).toBe(httpTotal);
    expect(completed({ listener: 'http', response_code: '200' })).toBe(SENT.ok + SENT.direct + SENT.h2 + SENT.grpc);
    expect(completed({ listener: 'http', response_code: '404' })).toBe(SENT.notFound);
    expect(completed({ listener: 'http', response_code_class: '5xx' })).toBe(SENT.retried503 + SENT.down + SENT.slow);
    expect(completed({ listener: 'http', response_code: '504' })).toBe(SENT.slow);
    expect(completed({ listener: 'bolt', response_code: '200' })).toBe(SENT.bolt);
    expect(completed({ listener: 'dubbo', response_code: '200' })).toBe(SENT.dubbo);
    expect(total(samples, 'shuttle_build_info')).toBe(1);
    expect(samples.find((s) => s.name === 'shuttle_build_info')!.labels).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+/), node: process.versions.node });
  });

  it('sums both workers\' histograms: the count is every worker\'s requests, the sum agrees with the access log', () => {
    const lines = shuttle.logs.filter((l) => l.msg === 'access' && l.listener === 'http');
    const byWorker = new Map<number, number>();
    for (const l of lines) byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1);
    expect(byWorker.size).toBe(2); // both workers served, and both are counted
    const h = histogram(samples, 'shuttle_listener_downstream_rq_time_seconds', { listener: 'http' });
    expect(h.count).toBe([...byWorker.values()].reduce((a, b) => a + b, 0));
    // The access line's duration is taken a moment after the histogram's, from the same start.
    const logged = lines.reduce((n, l) => n + l.duration_ms, 0) / 1000;
    expect(h.sum).toBeGreaterThan(0);
    expect(h.sum).toBeLessThanOrEqual(logged + 1e-6);
    expect(logged - h.sum).toBeLessThan(0.005 * lines.length + 0.01 * logged);
    // The 3 timed-out requests took at least their 50 ms timeout: they sit above the 0.05 bound.
    const le = (bound: number) => h.buckets.find((b) => b.le === bound)!.count;
    expect(h.count - le(0.025)).toBeGreaterThanOrEqual(SENT.slow);
  });

  it('counts upstream time, connect time and codes per cluster, and per named route', () => {
    const upstream = (cluster: string) => histogram(samples, 'shuttle_cluster_upstream_rq_time_seconds', { cluster });
    const connect = (cluster: string) => histogram(samples, 'shuttle_cluster_upstream_cx_connect_time_seconds', { cluster });
    const completed = (labels: Record<string, string>) => total(samples, 'shuttle_cluster_upstream_rq_completed_total', labels);
    // web: every request that got its response from upstream (the retried 503s once: the last try)
    expect(upstream('web').count).toBe(SENT.ok + SENT.notFound + SENT.retried503 + SENT.h2);
    expect(completed({ cluster: 'web', response_code: '200' })).toBe(SENT.ok + SENT.h2);
    expect(completed({ cluster: 'web', response_code: '503' })).toBe(SENT.retried503);
    expect(completed({ cluster: 'web', response_code: '504' })).toBe(SENT.slow);
    expect(total(samples, 'shuttle_cluster_upstream_rq_retry_total', { cluster: 'web' })).toBe(SENT.retried503);
    expect(total(samples, 'shuttle_cluster_upstream_rq_retry_success_total', { cluster: 'web' })).toBe(0);
    expect(total(samples, 'shuttle_cluster_upstream_rq_timeout_total', { cluster: 'web' })).toBe(SENT.slow);
    expect(upstream('grpc').count).toBe(SENT.grpc);
    expect(total(samples, 'shuttle_cluster_upstream_rq_grpc_total', { cluster: 'grpc', grpc_status: '0' })).toBe(SENT.grpc);
    expect(upstream('down').count).toBe(0);
    expect(completed({ cluster: 'down', response_code: '503' })).toBe(SENT.down);
    expect(upstream('bolt').count).toBe(SENT.bolt);
    expect(upstream('dubbo').count).toBe(SENT.dubbo);
    // Connect time: one observation per connection opened (and none for refused ones).
    for (const cluster of ['web', 'grpc', 'echo', 'bolt', 'dubbo']) {
      const opened = total(samples, 'shuttle_host_upstream_cx_total', { cluster }) - total(samples, 'shuttle_host_upstream_cx_connect_fail_total', { cluster });
      expect(connect(cluster).count, cluster).toBe(opened);
      expect(opened, cluster).toBeGreaterThan(0);
    }
    expect(connect('echo').count).toBe(SENT.tcp);
    expect(connect('down').count).toBe(0);
    // Named routes only; the slow route's requests timed out and are counted as 504.
    const route = (listener: string, name: string) => histogram(samples, 'shuttle_route_rq_time_seconds', { listener, route: name }).count;
    expect(route('http', 'api')).toBe(SENT.ok + SENT.notFound + SENT.retried503 + SENT.h2);
    expect(route('http', 'slow')).toBe(SENT.slow);
    expect(route('http', 'grpc')).toBe(SENT.grpc);
    expect(route('bolt', 'bolt-echo')).toBe(SENT.bolt);
    expect(route('dubbo', 'dubbo-echo')).toBe(SENT.dubbo);
    expect(total(samples, 'shuttle_route_rq_completed_total', { route: 'slow', response_code: '504' })).toBe(SENT.slow);
    expect(new Set(samples.filter((s) => s.name === 'shuttle_route_rq_time_seconds_count').map((s) => s.labels.route))).toEqual(new Set(['api', 'slow', 'grpc', 'bolt-echo', 'dubbo-echo']));
  });

  it('every histogram is well formed: cumulative buckets, +Inf equal to the count', () => {
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name.endsWith('_bucket'))) {
      const { le: _le, ...rest } = s.labels;
      const key = `${s.name}${JSON.stringify(rest)}`;
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    expect(series.size).toBeGreaterThan(20);
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].value, key).toBeGreaterThanOrEqual(buckets[i - 1].value);
      const inf = buckets.at(-1)!;
      expect(inf.labels.le, key).toBe('+Inf');
      const { le: _le, ...labels } = inf.labels;
      expect(total(samples, inf.name.replace(/_bucket$/, '_count'), labels), key).toBe(inf.value);
    }
  });

  it.skipIf(!PROMTOOL)(`passes promtool check metrics${PROMTOOL ? '' : ' (SKIPPED: promtool not installed; apt-get install prometheus)'}`, () => {
    const { code, output } = promtoolCheck(PROMTOOL!, text);
    expect(output).toBe('');
    expect(code).toBe(0);
  });
});
