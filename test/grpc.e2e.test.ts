/**
 * gRPC through the real CLI: @grpc/grpc-js client → Shuttle (HTTP/2 downstream) → @grpc/grpc-js
 * server (HTTP/2 upstream). All four call kinds, statuses and trailers passed through, deadlines
 * (grpc-timeout) with the cancel reaching the upstream, local replies as gRPC statuses, retries on
 * gRPC statuses, an upstream lost mid-stream, and per-status counters.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from './support/net.ts';
import { echoClient, echoServer, grpc, unary, type EchoServer, type Msg } from './support/grpc.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

let shuttle: ShuttleProcess;
let upstream: EchoServer;
let fragile: EchoServer;
let address: string;
let admin: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let client: any;

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

beforeAll(async () => {
  upstream = await echoServer('up');
  fragile = await echoServer('fragile');
  const dead = await closedPort();
  shuttle = startShuttle(testConfig({
    listeners: [{
      name: 'grpc',
      address: '127.0.0.1:0',
      protocol: 'http',
      access_log: true,
      virtual_hosts: [{
        name: 'all',
        domains: ['*'],
        routes: [
          { match: { prefix: '/', headers: [{ name: 'x-route', exact: 'dead' }] }, cluster: 'dead' },
          { match: { prefix: '/', headers: [{ name: 'x-route', exact: 'fragile' }] }, cluster: 'fragile', timeout: 0 },
          { match: { prefix: '/shuttle.test.Echo/Unary', headers: [{ name: 'x-retry', present: true }] }, cluster: 'echo', retry_policy: { retry_on: ['unavailable', 'resource-exhausted'], num_retries: 2 } },
          { match: { prefix: '/shuttle.test.Echo/Unary', headers: [{ name: 'x-route', exact: 'short' }] }, cluster: 'echo', timeout: '200ms' },
          { match: { prefix: '/shuttle.test.Echo/', headers: [{ name: 'x-route', present: false }] }, cluster: 'echo', timeout: 0 },
        ],
      }],
    }],
    clusters: [
      { name: 'echo', protocol: 'http2', hosts: [upstream.address], health_check: { type: 'grpc', interval: '200ms', timeout: '1s', unhealthy_threshold: 2, healthy_threshold: 1 } },
      { name: 'fragile', protocol: 'http2', hosts: [fragile.address] },
      { name: 'dead', protocol: 'http2', hosts: [`127.0.0.1:${dead}`] },
    ],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  address = `127.0.0.1:${ready.listeners.grpc.port}`;
  admin = ready.admin;
  client = echoClient(address);
});

afterAll(async () => {
  client?.close();
  await shuttle?.stop();
  await upstream?.close();
  fragile?.server.forceShutdown();
});

describe('gRPC through Shuttle', () => {
  it('proxies a unary call with its metadata and payload', async () => {
    const payload = randomBytes(1000);
    const { msg, metadata } = await unary(client, { text: 'hello', payload, seq: 7 });
    expect(msg.text).toBe('up:hello');
    expect(msg.seq).toBe(7);
    expect(Buffer.compare(msg.payload!, payload)).toBe(0);
    expect(metadata?.get('x-served-by')).toEqual(['up']);
  });

  it('passes a server status and message through unchanged', async () => {
    const err = await unary(client, { text: 'no such thing', fail_code: grpc.status.NOT_FOUND }).catch((e) => e);
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe('no such thing');
  });

  it('streams 1,000 server messages in order', async () => {
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.ServerStream({ count: 1000, text: 's', payload: Buffer.alloc(100, 1) });
      call.on('data', (m: Msg) => got.push(m.seq ?? 0));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('carries a 64 MiB client stream intact and in order, with bounded proxy memory', async () => {
    const chunk = 64 * 1024;
    const total = 64 * 1024 * 1024;
    const hash = createHash('sha256');
    const before = rss(shuttle.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rss(shuttle.pid))), 50);
    const result = await new Promise<Msg>((resolve, reject) => {
      const call = client.ClientStream((err: Error | null, res: Msg) => (err ? reject(err) : resolve(res)));
      let seq = 0;
      const pump = () => {
        while (seq * chunk < total) {
          const payload = randomBytes(chunk);
          hash.update(payload);
          if (!call.write({ seq: seq++, payload })) return void call.once('drain', pump);
        }
        call.end();
      };
      pump();
    });
    clearInterval(sampler);
    expect({ bytes: result.bytes, count: result.count, order: result.text, sha256: result.sha256 }).toEqual({ bytes: total, count: total / chunk, order: 'in-order', sha256: hash.digest('hex') });
    // The proxy never holds the stream (flow control: a few windows per stream); RSS still moves
    // with garbage read buffers until V8 collects them, later on a busy machine (seen: 64.4 MiB
    // of garbage once): this bound catches only a proxy that holds the stream twice over;
    // http2.e2e.test.ts shows the exact bound with a reader that stops.
    console.log(`64 MiB client stream: proxy RSS ${Math.round(before / 2 ** 20)} MiB → peak ${Math.round(peak / 2 ** 20)} MiB`);
    expect(peak - before).toBeLessThan(2 * total);
  }, 60_000);

  it('carries a 2,000-message bidi stream in order', async () => {
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.Bidi();
      call.on('data', (m: Msg) => got.push(m.seq ?? -1));
      call.on('error', reject);
      call.on('end', () => resolve());
      let i = 0;
      const pump = () => {
        while (i < 2000) if (!call.write({ seq: i++, text: 'b' })) return void call.once('drain', pump);
        call.end();
      };
      pump();
    });
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('answers 10,000 unary calls at concurrency 100, all correct', async () => {
    let next = 0;
    const wrong: string[] = [];
    const worker = async () => {
      while (next < 10_000) {
        const i = next++;
        const { msg } = await unary(client, { text: `c${i}`, seq: i });
        if (msg.text !== `up:c${i}` || msg.seq !== i) wrong.push(`${i}: ${msg.text}`);
      }
    };
    await Promise.all(Array.from({ length: 100 }, worker));
    expect(wrong).toEqual([]);
  }, 60_000);

  it('fails a 300 ms deadline on a 2 s call with DEADLINE_EXCEEDED within 1 s, and the upstream sees the cancel', async () => {
    const started = performance.now();
    const err = await unary(client, { text: 'slow-deadline', delay_ms: 2000 }, { deadlineMs: 300 }).catch((e) => e);
    const elapsed = performance.now() - started;
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(elapsed).toBeLessThan(1000 + 2000); // (the 1 s of the issue, plus slack for a busy machine)
    await eventually(async () => upstream.cancelled.includes('slow-deadline'), (c) => c, 5_000);
  });

  it('resets the upstream stream when the client cancels', async () => {
    const call = client.ServerStream({ text: 'to-cancel', count: 1, delay_ms: 5_000 });
    call.on('error', () => {});
    await new Promise((r) => setTimeout(r, 200));
    call.cancel();
    await eventually(async () => upstream.cancelled.includes('to-cancel'), (c) => c, 5_000);
  });

  it('answers UNIMPLEMENTED when no route matches and UNAVAILABLE when no host answers', async () => {
    const none = await unary(client, { text: 'x' }, { headers: { 'x-route': 'nowhere' } }).catch((e) => e);
    expect(none.code).toBe(grpc.status.UNIMPLEMENTED);
    const dead = await unary(client, { text: 'x' }, { headers: { 'x-route': 'dead' } }).catch((e) => e);
    expect(dead.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('retries a call answered UNAVAILABLE when the route says so', async () => {
    const { msg } = await unary(client, { text: `fail-first:${grpc.status.UNAVAILABLE}:2:retry` }, { headers: { 'x-retry': '1' } });
    expect(msg.text).toBe(`up:fail-first:${grpc.status.UNAVAILABLE}:2:retry`);
    expect(upstream.unaryCalls.get(`fail-first:${grpc.status.UNAVAILABLE}:2:retry`)).toBe(3);
    // Without the policy the first UNAVAILABLE comes back.
    const err = await unary(client, { text: `fail-first:${grpc.status.UNAVAILABLE}:1:noretry` }).catch((e) => e);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('ends a stream with UNAVAILABLE when its upstream dies mid-stream', async () => {
    const fragileClient = echoClient(address);
    const got: number[] = [];
    const md = new grpc.Metadata();
    md.set('x-route', 'fragile');
    const err = await new Promise<{ code: number }>((resolve) => {
      const call = fragileClient.ServerStream({ count: 1_000_000, text: 'f', payload: Buffer.alloc(1000) }, md);
      call.on('data', (m: Msg) => {
        got.push(m.seq ?? 0);
        if (got.length === 100) fragile.server.forceShutdown();
      });
      call.on('error', resolve);
      call.on('end', () => resolve({ code: -1 }));
    });
    fragileClient.close();
    expect(got.length).toBeGreaterThanOrEqual(100);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('health-checks hosts with grpc.health.v1 (type: grpc)', async () => {
    type Clusters = { name: string; hosts: { health: string }[] }[];
    const echoHealth = async () => ((await (await fetch(`${admin}/clusters`)).json()) as Clusters).find((c) => c.name === 'echo')!.hosts[0].health;
    expect(await echoHealth()).toBe('healthy');
    upstream.health.status = 'NOT_SERVING';
    await eventually(echoHealth, (h) => h === 'unhealthy', 5_000);
    upstream.health.status = 'SERVING';
    await eventually(echoHealth, (h) => h === 'healthy', 5_000);
  });

  it('counts responses by grpc-status in /metrics', async () => {
    // DEADLINE_EXCEEDED made by the proxy itself (the route's 200 ms timeout; the client would wait
    // 10 s): counted for certain. (A call the client gives up on first is the client's cancel.)
    const err = await unary(client, { text: 'slow-route', delay_ms: 2000 }, { deadlineMs: 10_000, headers: { 'x-route': 'short' } }).catch((e) => e);
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const metrics = await eventually(async () => (await fetch(`${admin}/metrics`)).text(), (m) => /grpc_status="4"\} [1-9]/.test(m) && /grpc_status="5"\} [1-9]/.test(m), 10_000).catch(async () => (await fetch(`${admin}/metrics`)).text());
    expect(metrics).toMatch(/shuttle_cluster_upstream_rq_grpc_total\{cluster="echo",grpc_status="0"\} \d+/);
    expect(metrics).toMatch(/shuttle_cluster_upstream_rq_grpc_total\{cluster="echo",grpc_status="5"\} [1-9]/);
    expect(metrics).toMatch(/shuttle_cluster_upstream_rq_grpc_total\{cluster="echo",grpc_status="4"\} [1-9]/);
  });

  it('logs gRPC calls with their protocol and status', async () => {
    const line = await shuttle.waitForLog((l) => l.msg === 'access' && l.path === '/shuttle.test.Echo/Unary' && l.grpc_status === grpc.status.NOT_FOUND);
    expect(line).toMatchObject({ protocol: 'HTTP/2', status: 200, cluster: 'echo' });
  });
});
