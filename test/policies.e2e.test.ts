/**
 * Traffic policies beyond filters, through the real CLI with 2 worker threads: circuit breakers
 * counted across threads (HTTP and Bolt), request mirroring to shadow clusters, and RPC filters
 * (fault, local_ratelimit, rbac) answering sofa-rpc-node clients in Bolt's own terms.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoClient, echoServer, grpc, unary, type EchoServer } from './support/grpc.ts';
import { boltConsumer, startBoltServer, type BoltUpstream } from './support/bolt-upstream.ts';
import { h2request, httpUpstream, type HttpUpstream } from './support/http.ts';
import { closedPort } from './support/net.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

let shuttle: ShuttleProcess;
let ports: Record<string, number>;
let admin: string;
let held: HttpUpstream;
let main: HttpUpstream;
let shadow: HttpUpstream;
let echo: EchoServer;
let bolt: BoltUpstream;
let blackhole: net.Server;
let good: HttpUpstream[];
let broken: HttpUpstream;
let halfBroken: HttpUpstream;
/** Requests the `held` upstream keeps open until release(). */
const waiting: http.ServerResponse[] = [];
const clients: { close(): Promise<void> }[] = [];

function release(): void {
  for (const res of waiting.splice(0)) res.end('released');
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : -1;
}

beforeAll(async () => {
  held = await httpUpstream('held', (_req, res) => waiting.push(res));
  main = await httpUpstream('main');
  shadow = await httpUpstream('shadow');
  echo = await echoServer('grpc');
  bolt = await startBoltServer('b');
  // Accepts connections and never answers: a shadow cluster that hangs.
  good = [await httpUpstream('good-1'), await httpUpstream('good-2')];
  broken = await httpUpstream('broken', (_req, res) => {
    res.statusCode = 503;
    res.end('broken');
  });
  let n = 0;
  halfBroken = await httpUpstream('half', (_req, res) => {
    res.statusCode = n++ % 2 === 0 ? 500 : 200;
    res.end('half');
  });
  blackhole = net.createServer(() => {});
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  const dead = await closedPort();
  const route = (prefix: string, cluster: string, extra: Record<string, unknown> = {}) => ({ match: { prefix }, cluster, ...extra });
  shuttle = startShuttle(testConfig({
    listeners: [
      { name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [
        route('/hold', 'held-limited'),
        route('/conn', 'held-conns'),
        route('/pending', 'held-pending'),
        route('/shuttle.test.Echo/', 'grpc-limited'),
        route('/mirror-half', 'main', { request_mirror_policies: [{ cluster: 'shadow', percentage: 50 }] }),
        route('/mirror-hang', 'main', { timeout: '5s', request_mirror_policies: [{ cluster: 'hang' }, { cluster: 'dead' }] }),
        route('/mirror', 'main', { request_mirror_policies: [{ cluster: 'shadow' }] }),
        route('/od5xx', 'od-5xx'),
        route('/odrate', 'od-rate'),
      ] }] },
      {
        name: 'rpc', address: '127.0.0.1:0', protocol: 'bolt',
        rpc_filters: [{ name: 'rbac', config: { action: 'DENY', policies: { other: { permissions: [{ rpc_service: { prefix: 'com.example.Other' } }], principals: [{ any: true }] } } } }],
        rpc: { routes: [{ cluster: 'bolt' }] },
      },
      {
        name: 'rpc-fault', address: '127.0.0.1:0', protocol: 'bolt',
        rpc_filters: [{ name: 'fault', config: {} }],
        rpc: { routes: [
          { match: { service_regex: 'com\\.example\\.Other.*' }, cluster: 'bolt', per_filter_config: { fault: { abort: { percentage: 100 } } } },
          { cluster: 'bolt' },
        ] },
      },
      {
        name: 'rpc-limited', address: '127.0.0.1:0', protocol: 'bolt',
        rpc_filters: [{ name: 'local_ratelimit', config: { token_bucket: { max_tokens: 5, tokens_per_fill: 1, fill_interval: '1h' } } }],
        rpc: { routes: [{ cluster: 'bolt' }] },
      },
      { name: 'rpc-breaker', address: '127.0.0.1:0', protocol: 'bolt', rpc: { routes: [{ cluster: 'bolt-limited' }] } },
    ],
    clusters: [
      { name: 'held-limited', hosts: [held.address], circuit_breakers: { thresholds: [{ max_requests: 10 }] } },
      { name: 'held-conns', hosts: [held.address], circuit_breakers: { thresholds: [{ max_connections: 2 }] } },
      { name: 'held-pending', hosts: [held.address], circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] } },
      { name: 'grpc-limited', protocol: 'http2', hosts: [echo.address], circuit_breakers: { thresholds: [{ max_requests: 1 }] } },
      { name: 'main', hosts: [main.address] },
      { name: 'shadow', hosts: [shadow.address] },
      { name: 'hang', hosts: [`127.0.0.1:${(blackhole.address() as net.AddressInfo).port}`] },
      { name: 'dead', hosts: [`127.0.0.1:${dead}`] },
      { name: 'bolt', hosts: [`127.0.0.1:${bolt.port}`] },
      { name: 'od-5xx', hosts: [good[0].address, broken.address], outlier_detection: { consecutive_5xx: 3, base_ejection_time: '60s', max_ejection_percent: 50 } },
      { name: 'od-rate', hosts: [good[0].address, good[1].address, halfBroken.address], outlier_detection: { base_ejection_time: '60s', max_ejection_percent: 50, success_rate: { interval: '1s', minimum_hosts: 3, request_volume: 10, stdev_factor: 1 } } },
      { name: 'bolt-limited', hosts: [`127.0.0.1:${bolt.port}`], circuit_breakers: { thresholds: [{ max_requests: 2 }] } },
    ],
  }), { threads: 2 });
  ({ ports, admin } = await shuttle.ports());
}, 60_000);

afterAll(async () => {
  release();
  for (const c of clients) await c.close().catch(() => {});
  await shuttle?.stop();
  await Promise.all([held?.close(), main?.close(), shadow?.close(), echo?.close(), broken?.close(), halfBroken?.close(), ...(good ?? []).map((g) => g.close())]);
  blackhole?.close();
  bolt?.child.kill('SIGKILL');
});

/** Starts `n` requests to `path`, each on its own connection, without waiting for them. */
function openRequests(path: string, n: number) {
  const pools = Array.from({ length: n }, () => new Pool(`http://127.0.0.1:${ports.web}`, { connections: 1 }));
  const results = pools.map((p) => p.request({ path, method: 'GET' }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })));
  return { results, close: () => Promise.all(pools.map((p) => p.close())) };
}

describe('circuit breakers', () => {
  it('max_requests 10: the 11th request gets 503 (UO) while 10 are held open across both workers', async () => {
    const open = openRequests('/hold', 10);
    try {
      await eventually(async () => waiting.length, (n) => n === 10, 10_000);
      expect(await metric('shuttle_cluster_circuit_breakers_remaining', 'cluster="held-limited",priority="default",resource="requests"')).toBe(0);
      const eleventh = await request(`http://127.0.0.1:${ports.web}/hold`);
      expect(eleventh.statusCode).toBe(503);
      expect(eleventh.headers['x-shuttle-error']).toBe('SHUTTLE_E_CIRCUIT_OPEN');
      await eleventh.body.dump();
      expect(waiting.length).toBe(10); // never reached the upstream
      release();
      expect((await Promise.all(open.results)).map((r) => r.status)).toEqual(Array(10).fill(200));
    } finally {
      release();
      await open.close();
    }
    // Both workers served some of the 10 (the limit held across threads, not per thread).
    // Access lines are written after the response, asynchronously: wait for all ten.
    const served = () => shuttle.logs.filter((l) => l.msg === 'access' && l.path === '/hold' && l.status === 200);
    await eventually(async () => served().length, (n) => n === 10, 10_000);
    expect(new Set(served().map((l) => l.worker)).size).toBe(2);
    await eventually(() => metric('shuttle_cluster_upstream_rq_pending_overflow_total', 'cluster="held-limited"'), (n) => n === 1);
    await eventually(() => metric('shuttle_listener_downstream_rq_response_flag_total', 'listener="web",flag="UO"'), (n) => n >= 1);
    expect(await metric('shuttle_cluster_circuit_breakers_remaining', 'cluster="held-limited",priority="default",resource="requests"')).toBe(10);
  });

  it('max_connections 2: requests queue for the two connections instead of opening more', async () => {
    const before = held.connections;
    const session = http2.connect(`http://127.0.0.1:${ports.web}`);
    try {
      const results = [1, 2, 3, 4].map((i) => h2request(session, { ':path': `/conn/${i}` }));
      await eventually(async () => waiting.length, (n) => n === 2, 10_000);
      await eventually(() => metric('shuttle_cluster_upstream_cx_overflow_total', 'cluster="held-conns"'), (n) => n >= 2);
      expect(held.connections - before).toBe(2);
      release();
      await eventually(async () => waiting.length, (n) => n === 2, 10_000);
      release();
      expect((await Promise.all(results)).map((r) => r.status)).toEqual(Array(4).fill(200));
      expect(held.connections - before).toBe(2);
    } finally {
      release();
      session.close();
    }
  });

  it('max_pending_requests 1: one request waits for the one connection allowed, the next is refused at once', async () => {
    // One HTTP/2 client connection: every request on it is served by the same worker (pools are
    // per worker; the limits are not).
    const session = http2.connect(`http://127.0.0.1:${ports.web}`);
    try {
      const first = h2request(session, { ':path': '/pending/1' });
      await eventually(async () => waiting.length, (n) => n === 1, 10_000);
      const second = h2request(session, { ':path': '/pending/2' });
      await eventually(() => metric('shuttle_cluster_circuit_breakers_remaining', 'cluster="held-pending",priority="default",resource="pending_requests"'), (n) => n === 0, 10_000);
      const third = await h2request(session, { ':path': '/pending/3' });
      expect(third.status).toBe(503);
      expect(third.headers['x-shuttle-error']).toBe('SHUTTLE_E_CIRCUIT_OPEN');
      release();
      expect((await first).status).toBe(200);
      await eventually(async () => waiting.length, (n) => n === 1, 10_000);
      release();
      expect((await second).status).toBe(200);
      expect(await metric('shuttle_cluster_upstream_cx_overflow_total', 'cluster="held-pending"')).toBeGreaterThanOrEqual(1);
    } finally {
      release();
      session.close();
    }
  });

  it('answers gRPC calls over the limit with UNAVAILABLE', async () => {
    const client = echoClient(`127.0.0.1:${ports.web}`);
    try {
      const slow = unary(client, { text: 'slow', delay_ms: 1500 });
      await eventually(() => metric('shuttle_cluster_circuit_breakers_remaining', 'cluster="grpc-limited",priority="default",resource="requests"'), (n) => n === 0, 10_000);
      const err = await unary(client, { text: 'over' }).catch((e) => e);
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect((await slow).msg.text).toBe('grpc:slow');
    } finally {
      client.close();
    }
  });

  it('limits Bolt calls too: the third of two allowed gets Bolt\'s busy status, at once', async () => {
    const invoke = await boltConsumer(ports['rpc-breaker'], clients);
    const slow = [invoke('slow', [1500]), invoke('slow', [1500])];
    await bolt.slowCallStarted();
    await eventually(() => metric('shuttle_cluster_circuit_breakers_remaining', 'cluster="bolt-limited",priority="default",resource="requests"'), (n) => n === 0, 10_000);
    const t0 = performance.now();
    await expect(invoke('echo', ['third'])).rejects.toThrow(/max_requests/);
    expect(performance.now() - t0).toBeLessThan(1500); // refused, not queued behind the slow ones
    expect(await Promise.all(slow)).toEqual(['b:slow', 'b:slow']);
    expect(await invoke('echo', ['after'])).toBe('b:after');
  });
});

describe('outlier detection on responses', () => {
  const statuses = async (path: string, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(`http://127.0.0.1:${ports.web}${path}`);
      await res.body.dump();
      out.push(res.statusCode);
    }
    return out;
  };
  const ejected = async (cluster: string, host: string) => (await metric('shuttle_host_healthy', `cluster="${cluster}",host="${host}"`)) === 0;

  it('ejects a host after 3 consecutive 5xx responses, counted across workers; then only the good host serves', async () => {
    await statuses('/od5xx', 12);
    await eventually(() => ejected('od-5xx', broken.address), (e) => e, 10_000);
    expect(await ejected('od-5xx', good[0].address)).toBe(false);
    expect(await statuses('/od5xx', 20)).toEqual(Array(20).fill(200));
    await shuttle.waitForLog((l) => l.msg === 'host health changed' && l.host === broken.address && /3 consecutive 5xx responses/.test(l.reason));
  });

  it('ejects a host whose success rate falls below the cluster\'s (success_rate)', async () => {
    const before = halfBroken.requests.length;
    await eventually(async () => {
      await statuses('/odrate', 30);
      return ejected('od-rate', halfBroken.address);
    }, (e) => e, 20_000);
    expect(halfBroken.requests.length).toBeGreaterThan(before);
    expect(await ejected('od-rate', good[0].address)).toBe(false);
    expect(await ejected('od-rate', good[1].address)).toBe(false);
    expect(await statuses('/odrate', 20)).toEqual(Array(20).fill(200));
  });
});

describe('request mirroring', () => {
  it('sends a copy (body included, authority with -shadow) to the shadow cluster', async () => {
    const res = await request(`http://127.0.0.1:${ports.web}/mirror/x`, { method: 'POST', body: 'payload-1' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('main POST /mirror/x');
    await eventually(async () => shadow.requests.filter((r) => r.url === '/mirror/x').length, (n) => n === 1);
    const copy = shadow.requests.find((r) => r.url === '/mirror/x')!;
    expect(copy.body.toString()).toBe('payload-1');
    expect(copy.headers.host).toBe(`127.0.0.1-shadow:${ports.web}`);
  });

  it('mirrors the configured share (50% of 400, ±10 points)', async () => {
    const pool = new Pool(`http://127.0.0.1:${ports.web}`, { connections: 8 });
    try {
      for (let i = 0; i < 400; i += 20) {
        await Promise.all(Array.from({ length: 20 }, async () => (await pool.request({ path: '/mirror-half', method: 'GET' })).body.dump()));
      }
    } finally {
      await pool.close();
    }
    await eventually(() => metric('shuttle_cluster_upstream_rq_mirrored_total', 'cluster="shadow"'), (n) => n > 0);
    const copies = await eventually(async () => shadow.requests.filter((r) => r.url === '/mirror-half').length, (n) => n >= 160, 10_000);
    expect(copies).toBeGreaterThanOrEqual(160);
    expect(copies).toBeLessThanOrEqual(240);
  });

  it('a hanging or dead shadow cluster neither slows nor fails the original', async () => {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await request(`http://127.0.0.1:${ports.web}/mirror-hang`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      times.push(performance.now() - t0);
    }
    // The shadows wait up to the route timeout (5 s); the originals do not wait for them.
    expect(Math.max(...times)).toBeLessThan(2_500);
  });
});

describe('RPC filters (Bolt, sofa-rpc-node)', () => {
  it('rbac denies a service by policy, others pass', async () => {
    const echoCall = await boltConsumer(ports.rpc, clients);
    const otherCall = await boltConsumer(ports.rpc, clients, 'com.example.Other');
    expect(await echoCall('echo', ['hi'])).toBe('b:hi');
    await expect(otherCall('who', [])).rejects.toThrow(/RBAC: access denied/);
    await eventually(() => metric('shuttle_listener_rbac_denied_total', 'listener="rpc"'), (n) => n === 1);
    expect(await metric('shuttle_listener_rbac_allowed_total', 'listener="rpc"')).toBe(1);
  });

  it('fault aborts the calls of one route (per_filter_config), others pass', async () => {
    const echoCall = await boltConsumer(ports['rpc-fault'], clients);
    const otherCall = await boltConsumer(ports['rpc-fault'], clients, 'com.example.Other');
    await expect(otherCall('who', [])).rejects.toThrow(/fault filter abort/);
    expect(await echoCall('echo', ['fine'])).toBe('b:fine');
    const line = await shuttle.waitForLog((l) => l.msg === 'access' && l.listener === 'rpc-fault' && l.service?.startsWith('com.example.Other'));
    expect(line).toMatchObject({ response_flags: 'FI', error: 'SHUTTLE_E_FAULT_INJECTED', upstream: null });
  });

  it('local_ratelimit lets 5 calls through, then answers with Bolt\'s busy status', async () => {
    const call = await boltConsumer(ports['rpc-limited'], clients);
    const results = [];
    for (let i = 0; i < 8; i++) results.push(await call('echo', [`n${i}`]).then(() => 'ok', (e: Error) => e.message));
    expect(results.slice(0, 5)).toEqual(Array(5).fill('ok'));
    for (const r of results.slice(5)) expect(r).toMatch(/local_rate_limited/);
    await eventually(() => metric('shuttle_listener_downstream_rq_response_flag_total', 'listener="rpc-limited",flag="RL"'), (n) => n === 3);
  });
});
