/**
 * SOFA Bolt through the real CLI (2 worker threads): sofa-rpc-node RpcClient → Shuttle →
 * sofa-rpc-node RpcServer, each server in its own process.
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boltConsumer, startBoltServer, type BoltUpstream } from './support/bolt-upstream.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const require = createRequire(import.meta.url);
const protocol = require('sofa-bolt-node/lib/protocol');

const servers: Record<string, BoltUpstream> = {};
let shuttle: ShuttleProcess;
let boltPort: number;
let autoPort: number;
let idemPort: number;
let delayedPort: number;
let heldPort: number;
let idlePort: number;
let admin: string;
const clients: { close(): Promise<void> }[] = [];


const consumer = (port: number, interfaceName?: string) => boltConsumer(port, clients, interfaceName);

beforeAll(async () => {
  for (const name of ['a', 'b', 'c', 'd', 'e']) servers[name] = await startBoltServer(name);
  const rpc = {
    routes: [
      { match: { service: 'com.example.Other:1.0' }, cluster: 'other' },
      { match: { service_regex: 'com\\.example\\.Echo:.*' }, cluster: 'echo' },
    ],
  };
  shuttle = startShuttle(testConfig({
    listeners: [
      { name: 'bolt', address: '127.0.0.1:0', protocol: 'bolt', rpc },
      { name: 'auto', address: '127.0.0.1:0', protocol: 'auto', rpc, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'http here\n' } }] }] },
      { name: 'idem', address: '127.0.0.1:0', protocol: 'bolt', rpc: { routes: [{ cluster: 'idem', retry_policy: { idempotent: true, num_retries: 1 } }] } },
      { name: 'idle', address: '127.0.0.1:0', protocol: 'bolt', idle_timeout: '1s', rpc: { routes: [{ cluster: 'echo' }] } },
      { name: 'delayed', address: '127.0.0.1:0', protocol: 'bolt', rpc_filters: [{ name: 'fault', config: { delay: { fixed_delay: '300ms', percentage: 100 } } }], rpc: { routes: [{ cluster: 'echo' }] } },
      { name: 'held', address: '127.0.0.1:0', protocol: 'bolt', rpc_filters: [{ name: 'fault', config: { delay: { fixed_delay: '60s', percentage: 100 } } }], rpc: { routes: [{ cluster: 'echo' }] } },
    ],
    clusters: [
      { name: 'echo', hosts: [`127.0.0.1:${servers.a.port}`, `127.0.0.1:${servers.b.port}`] },
      { name: 'other', hosts: [`127.0.0.1:${servers.c.port}`] },
      { name: 'idem', hosts: [`127.0.0.1:${servers.d.port}`, `127.0.0.1:${servers.e.port}`] },
    ],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  boltPort = ready.listeners.bolt.port;
  autoPort = ready.listeners.auto.port;
  idemPort = ready.listeners.idem.port;
  delayedPort = ready.listeners.delayed.port;
  heldPort = ready.listeners.held.port;
  idlePort = ready.listeners.idle.port;
  admin = ready.admin;
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await shuttle?.stop();
  for (const s of Object.values(servers)) s.child.kill('SIGKILL');
});

describe('SOFA Bolt proxy', () => {
  it('carries thousands of concurrent calls over few connections, every result correct', async () => {
    const invoke = await consumer(boltPort);
    const n = 3000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => invoke('echo', [`m${i}`])));
    for (let i = 0; i < n; i++) expect(results[i]).toMatch(new RegExp(`^[ab]:m${i}$`));
    // Round robin spread the calls over both servers.
    expect(new Set(results.map((r) => r[0]))).toEqual(new Set(['a', 'b']));
  });

  // Regression guard: plain sockets read into one buffer per thread, which the next read of any
  // connection overwrites. A call held past its read (a fault delay here; a retry, an upstream
  // still connecting) must still send its own bytes: 6 connections (two or more share a worker
  // thread) each send calls of different sizes while the others' calls are held.
  it('sends calls held past their read (a fault delay) with their own bytes', async () => {
    const invokers = await Promise.all(Array.from({ length: 6 }, () => consumer(delayedPort)));
    const args = invokers.map((_, c) => Array.from({ length: 20 }, (_, i) => `c${c}-${i}-${'x'.repeat((c * 20 + i) * 3)}`));
    const results = await Promise.all(invokers.flatMap((invoke, c) => args[c].map((a) => invoke('echo', [a]))));
    expect(results.map((r) => r.slice(2))).toEqual(args.flat());
  });

  it('ends every call in flight when its client goes away (each logged as a downstream reset)', async () => {
    const activeStreams = async () => {
      const body = (await (await fetch(`${admin}/workers`)).json()) as { workers: { active_streams: number }[] };
      return body.workers.reduce((n, w) => n + w.active_streams, 0);
    };
    // Seven calls held in Shuttle by the fault filter (60 s), then the client is gone.
    const options = { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, sentReqs: new Map(), classCache: new Map() };
    const frames = Array.from({ length: 7 }, (_, i) => Buffer.from(protocol.requestEncode(100 + i, { serverSignature: 'com.example.Echo:1.0', methodName: 'echo', args: [{ $class: 'java.lang.String', $: `gone${i}` }], timeout: 60_000, requestProps: { service: 'com.example.Echo:1.0' } }, options)));
    const s = net.connect(heldPort, '127.0.0.1', () => s.write(Buffer.concat(frames)));
    s.on('error', () => {});
    await eventually(activeStreams, (n) => n >= 7, 20_000);
    s.resetAndDestroy(); // (a FIN alone would be a half-close: the answers would still be awaited)
    const resets = await eventually(
      async () => shuttle.logs.filter((l) => l.msg === 'access' && l.listener === 'held' && l.error === 'SHUTTLE_E_DOWNSTREAM_RESET').length,
      (n) => n >= 7,
    );
    expect(resets).toBe(7);
    expect(await eventually(activeStreams, (n) => n === 0)).toBe(0);
  });

  it('closes a connection with no byte either way for idle_timeout; heartbeats keep one open', async () => {
    const hb = (id: number) => protocol.heartbeatEncode(id, {}, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 });
    const open = (): Promise<{ s: net.Socket; opened: number; closed: Promise<number>; answers: () => number }> => new Promise((resolve, reject) => {
      let answers = 0;
      const s = net.connect(idlePort, '127.0.0.1', () => resolve({ s, opened: performance.now(), closed, answers: () => answers }));
      const closed = new Promise<number>((r) => s.once('close', () => r(performance.now())));
      s.on('data', () => answers++);
      s.once('error', reject);
    });
    const quiet = await open();
    const busy = await open();
    // The busy one sends a heartbeat every 200 ms for 1.6 s (past one idle timeout; a gap of five
    // intervals, on a stalled machine, would be needed to lose it).
    let lastWrite = 0;
    for (let i = 1; i <= 8; i++) {
      await new Promise((r) => setTimeout(r, 200));
      lastWrite = performance.now();
      busy.s.write(hb(i));
    }
    const quietFor = (await quiet.closed) - quiet.opened;
    // Upper bounds: idle_timeout, a quarter more by design, and generous slack for a busy machine.
    expect(quietFor).toBeGreaterThanOrEqual(900); // (the proxy may start its clock a little before our connect callback runs)
    expect(quietFor).toBeLessThan(5000);
    expect(busy.s.destroyed).toBe(false);
    await eventually(async () => busy.answers(), (n) => n === 8);
    // Quiet from its last heartbeat on: closed after idle_timeout (and at most a quarter more, plus timer slack).
    const busyQuietFor = (await busy.closed) - lastWrite;
    expect(busyQuietFor).toBeGreaterThanOrEqual(990);
    expect(busyQuietFor).toBeLessThan(5000);
  });

  it('routes by service to different servers', async () => {
    const other = await consumer(boltPort, 'com.example.Other');
    expect(await other('who', [])).toBe('c:other');
  });

  it('answers heartbeats itself', async () => {
    const hb = protocol.heartbeatEncode(77, {}, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 });
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(boltPort, '127.0.0.1', () => s.write(hb));
      s.once('data', (d: Buffer) => {
        s.destroy();
        resolve(d);
      });
      s.once('error', reject);
    });
    // v1 response: proto 1, type 0 (response), cmdcode 0 (heartbeat), id 77, status 0.
    expect([reply[0], reply[1], reply.readUInt16BE(2), reply.readUInt32BE(5), reply.readUInt16BE(10)]).toEqual([1, 0, 0, 77, 0]);
  });

  /** Sends `bytes`, half-closes if asked, and collects what comes back until the proxy closes. */
  function exchange(bytes: Buffer, halfClose: boolean): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const got: Buffer[] = [];
      const s = net.connect({ port: boltPort, host: '127.0.0.1', allowHalfOpen: true }, () => {
        s.write(bytes);
        if (halfClose) s.end();
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`the proxy did not close; got ${Buffer.concat(got).length} bytes`));
      }, 5_000);
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => s.end());
      s.once('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(got));
      });
      s.once('error', reject);
    });
  }

  // Regression: the proxy never closed an RPC connection after the client's FIN (allowHalfOpen):
  // it sat in CLOSE-WAIT, counted as active, until idle_timeout.
  it('answers what a half-closed client sent, then closes the connection', async () => {
    const hb = protocol.heartbeatEncode(78, {}, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 });
    const reply = await exchange(hb, true);
    expect(reply.readUInt32BE(5)).toBe(78);
  });

  // Regression: an error reply for a request id of 2^31 or more threw inside the worker.
  it('answers a call with a request id of 2^31 or more with a Bolt error, and the worker lives on', async () => {
    const raw = Buffer.from(protocol.requestEncode(5, { serverSignature: 'com.example.Nope:1.0', methodName: 'x', args: [], timeout: 3000, requestProps: { service: 'com.example.Nope:1.0' } }, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, sentReqs: new Map(), classCache: new Map() }));
    raw.writeUInt32BE(0x80000001, 5);
    const reply = await exchange(raw, true);
    // v1 response: id at 5, status at 10 (not 0: no route).
    expect(reply.readUInt32BE(5)).toBe(0x80000001);
    expect(reply.readUInt16BE(10)).not.toBe(0);
    const workers = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number };
    expect(workers.restarts).toBe(0);
  });

  it('closes a connection that sends a malformed frame, counts it, and keeps serving others', async () => {
    const invoke = await consumer(boltPort);
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(boltPort, '127.0.0.1', () => s.write(Buffer.from([0x01, 0x07, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
      s.on('error', () => {});
      s.once('close', () => resolve(true));
    });
    expect(closed).toBe(true);
    expect(await invoke('echo', ['still fine'])).toMatch(/^[ab]:still fine$/);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/shuttle_listener_downstream_cx_protocol_error_total\{listener="bolt"\} 1/);
    const workers = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number };
    expect(workers.restarts).toBe(0);
  });

  it('serves Bolt and HTTP/1 on one auto-detecting port', async () => {
    const invoke = await consumer(autoPort);
    expect(await invoke('echo', ['auto'])).toMatch(/^[ab]:auto$/);
    const res = await fetch(`http://127.0.0.1:${autoPort}/`);
    expect(await res.text()).toBe('http here\n');
  });

  it('fails only the in-flight calls of a killed upstream, with a Bolt error, and later calls succeed', async () => {
    const invoke = await consumer(boltPort);
    // Slow calls spread over a and b; then a dies with its calls in flight.
    const aBusy = servers.a.slowCallStarted();
    const inflight = Array.from({ length: 20 }, () => invoke('slow', [1_500]).then((r) => ({ ok: true, r }), (e: Error) => ({ ok: false, r: e.message })));
    await aBusy;
    servers.a.child.kill('SIGKILL');
    const outcomes = await Promise.all(inflight);
    const failed = outcomes.filter((o) => !o.ok);
    const succeeded = outcomes.filter((o) => o.ok);
    expect(failed.length).toBeGreaterThan(0);
    // Answered in Bolt at once (not left to the client's timeout), as an RPC error.
    for (const f of failed) expect(f.r).toMatch(/RpcServerException.*SHUTTLE_E_UPSTREAM_RESET/);
    expect(succeeded.every((o) => o.r === 'b:slow')).toBe(true); // b's calls were not disturbed
    // New calls: a refuses connections now, so they go to b.
    const later = await Promise.all(Array.from({ length: 20 }, (_, i) => invoke('echo', [`after${i}`])));
    expect(later.every((r, i) => r === `b:after${i}`)).toBe(true);
  });

  it('retries calls lost with a killed upstream on another host when the route is idempotent', async () => {
    const invoke = await consumer(idemPort);
    const dBusy = servers.d.slowCallStarted();
    // Tags of different sizes: a retry must send each call's own bytes.
    const tags = Array.from({ length: 20 }, (_, i) => `t${i}-${'y'.repeat(i * 7)}`);
    const inflight = tags.map((tag) => invoke('slow', [1_000, tag]).then((r) => ({ ok: true, r }), (e: Error) => ({ ok: false, r: e.message })));
    await dBusy;
    // Other clients' calls meanwhile: every worker's read buffer is written again before the retries.
    const others = await Promise.all(Array.from({ length: 4 }, () => consumer(idemPort)));
    const otherArgs = others.map((_, c) => Array.from({ length: 10 }, (_, i) => `o${c}-${i}-${'z'.repeat((c * 10 + i) * 5)}`));
    const otherResults = await Promise.all(others.flatMap((other, c) => otherArgs[c].map((a) => other('echo', [a]))));
    expect(otherResults.map((r) => r.slice(2))).toEqual(otherArgs.flat());
    servers.d.child.kill('SIGKILL');
    const outcomes = await Promise.all(inflight);
    // Every call succeeded: those on d were sent again to e.
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.map((o) => o.r.replace(/^[de]:/, ''))).toEqual(tags.map((t) => `slow:${t}`));
    expect(outcomes.some((o) => o.r.startsWith('e:'))).toBe(true);
    // The access lines may still be on their way through the log pipe.
    const retried = await eventually(async () => shuttle.logs.filter((l) => l.msg === 'access' && l.listener === 'idem' && l.retries === 1).length, (n) => n > 0);
    expect(retried).toBeGreaterThan(0);
  });
});
