/**
 * The real CLI with --threads 2, proxying raw TCP to real servers on 127.0.0.1.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, closedPort, echoServer, hashServer, namedServer, sendAndCollect, sha256, type Upstream } from './support/net.ts';
import { eventually } from './support/wait.ts';
import { ShuttleProcess, startShuttle, testConfig, writeTempConfig } from './support/shuttle.ts';

const running: { shuttles: ShuttleProcess[]; upstreams: Upstream[]; clients: Client[] } = { shuttles: [], upstreams: [], clients: [] };

afterEach(async () => {
  for (const c of running.clients.splice(0)) c.socket.destroy();
  await Promise.all(running.shuttles.splice(0).map((s) => s.stop()));
  await Promise.all(running.upstreams.splice(0).map((u) => u.close()));
});

function up<T extends Upstream>(u: T): T {
  running.upstreams.push(u);
  return u;
}

async function proxy(hosts: string[], extra: { listener?: object; cluster?: object; top?: object } = {}, threads = 2) {
  const shuttle = startShuttle(testConfig({
    listeners: [{ name: 'in', address: '127.0.0.1:0', cluster: 'backend', ...extra.listener }],
    clusters: [{ name: 'backend', connect_timeout: '1s', hosts, ...extra.cluster }],
    ...extra.top,
  }), { threads });
  running.shuttles.push(shuttle);
  const { admin, listeners } = await shuttle.ready();
  return { shuttle, admin, port: listeners.in.port };
}

async function connect(port: number): Promise<Client> {
  const c = await Client.connect(port);
  running.clients.push(c);
  return c;
}

type WorkerRow = { slot: number; state: string; active_connections: number; total_connections: number; worker_id: number };
async function workers(admin: string): Promise<{ restarts: number; workers: WorkerRow[] }> {
  const res = await fetch(`${admin}/workers`);
  return (await res.json()) as { restarts: number; workers: WorkerRow[] };
}

describe('L4 TCP proxy (2 worker threads)', () => {
  it('round-trips small payloads byte for byte', async () => {
    const echo = up(await echoServer());
    const { port } = await proxy([echo.address]);
    const c = await connect(port);
    expect(await c.echo('hello')).toBe('hello');
    expect(await c.echo('ünïcødé ✓\r\n\0')).toBe('ünïcødé ✓\r\n\0');
  });

  it('carries a multi-MB upload with half-close and returns the upstream reply intact', async () => {
    const hasher = up(await hashServer('h1'));
    const { shuttle, port } = await proxy([hasher.address]);
    const payload = randomBytes(8 * 1024 * 1024);
    const reply = (await sendAndCollect(port, payload)).toString();
    expect(reply).toBe(`h1 ${payload.length} ${sha256(payload)}`);
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'access log');
    expect(access).toMatchObject({ listener: 'in', cluster: 'backend', upstream: hasher.address, bytes_received: payload.length, bytes_sent: reply.length, error: null, attempts: 1 });
    expect(access.conn).toMatch(/^\d+-\d+$/);
    expect(typeof access.duration_ms).toBe('number');
  });

  it('echoes 16 MB in both directions at once without corruption', async () => {
    const echo = up(await echoServer());
    const { port } = await proxy([echo.address]);
    const payload = randomBytes(16 * 1024 * 1024);
    const back = await sendAndCollect(port, payload, 30_000);
    expect(back.length).toBe(payload.length);
    expect(sha256(back)).toBe(sha256(payload));
  });

  it('spreads connections over both workers', async () => {
    const echo = up(await echoServer());
    const { shuttle, admin, port } = await proxy([echo.address]);
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(port)));
    for (const c of clients) expect(await c.echo('x')).toBe('x');
    const load = await workers(admin);
    expect(load.workers.map((w) => w.active_connections)).toEqual([5, 5]);
    expect(load.workers.every((w) => w.total_connections === 5 && w.state === 'ready')).toBe(true);
    for (const c of clients) c.socket.end();
    await eventually(() => workers(admin), (l) => l.workers.every((w) => w.active_connections === 0));
    // Each worker wrote access-log lines of its own.
    // Access lines are written asynchronously after the close: wait for all ten.
    const lines = await eventually(async () => shuttle.logs.filter((l) => l.msg === 'access'), (l) => l.length >= 10, 10_000);
    expect(new Set(lines.map((l) => l.worker)).size).toBe(2);
  });

  it('hands new connections to the worker with the fewest active connections', async () => {
    const echo = up(await echoServer());
    const { admin, port } = await proxy([echo.address]);
    const held = await connect(port);
    expect(await held.echo('held')).toBe('held');
    const busy = (await workers(admin)).workers.find((w) => w.active_connections === 1)!.slot;
    // Four short connections in a row: each finds the other worker less loaded.
    for (let i = 0; i < 4; i++) {
      const c = await connect(port);
      expect(await c.echo(`short ${i}`)).toBe(`short ${i}`);
      c.socket.end();
      await c.closed;
      await eventually(() => workers(admin), (l) => l.workers[1 - busy].active_connections === 0);
    }
    const load = await workers(admin);
    expect(load.workers[busy].total_connections).toBe(1);
    expect(load.workers[1 - busy].total_connections).toBe(4);
  });

  it('uses the next host when one upstream is down', async () => {
    const down = await closedPort();
    const live = up(await namedServer('live'));
    const { shuttle, port } = await proxy([`127.0.0.1:${down}`, live.address], { cluster: { lb_policy: 'round_robin' } });
    // Round robin sends every other connection to the dead host first; all must still work.
    for (let i = 0; i < 4; i++) {
      const c = await connect(port);
      expect((await c.until(5)).toString()).toBe('live\n');
      c.socket.end();
      await c.closed;
    }
    const retried = await shuttle.waitForLog((l) => l.msg === 'access' && l.attempts === 2, 5_000, 'an access line with 2 attempts');
    expect(retried).toMatchObject({ upstream: live.address, error: null });
  });

  it('closes the downstream and logs the error when every host is down', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const { shuttle, port } = await proxy([`127.0.0.1:${a}`, `127.0.0.1:${b}`]);
    const c = await connect(port);
    await c.closed;
    expect(c.received.length).toBe(0);
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'access log');
    expect(access).toMatchObject({ upstream: null, attempts: 2, error: 'SHUTTLE_E_UPSTREAM_CONNECT_FAILED' });
  });

  it('closes a connection that is idle for idle_timeout', async () => {
    const echo = up(await echoServer());
    const { shuttle, port } = await proxy([echo.address], { listener: { idle_timeout: '300ms' } });
    const c = await connect(port);
    expect(await c.echo('ping')).toBe('ping');
    await c.closed;
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'access log');
    expect(access.error).toBe('SHUTTLE_E_IDLE_TIMEOUT');
    expect(access.duration_ms).toBeGreaterThanOrEqual(300);
  });

  it('keeps a one-way download that lasts longer than idle_timeout (bytes in either direction count)', async () => {
    // The upstream talks, the client never does: a chunk every 100 ms for 1.2 s, idle_timeout 400 ms.
    const server = net.createServer((s) => {
      let n = 0;
      const timer = setInterval(() => {
        if (++n > 12) {
          clearInterval(timer);
          s.end('done');
          return;
        }
        s.write(`tick ${n}\n`);
      }, 100);
      s.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port0 = (server.address() as net.AddressInfo).port;
    running.upstreams.push({ port: port0, address: '', connections: 0, close: () => new Promise((r) => server.close(() => r())) });
    const { shuttle, port } = await proxy([`127.0.0.1:${port0}`], { listener: { idle_timeout: '400ms' } });
    // A client that only listens (no half-close: that would be activity of its own).
    const got = await new Promise<Buffer>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('error', reject);
      c.on('end', () => resolve(Buffer.concat(chunks)));
    });
    expect(got.toString()).toBe(`${Array.from({ length: 12 }, (_, i) => `tick ${i + 1}\n`).join('')}done`);
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'access log');
    expect(access.error).toBeNull();
    expect(access.bytes_sent).toBe(got.length);
  });

  it('holds a fast upstream back while the client does not read, then delivers every byte', async () => {
    const total = 64 * 1024 * 1024;
    const payload = randomBytes(1024 * 1024);
    let upstreamSocket: net.Socket | undefined;
    const server = net.createServer((s) => {
      upstreamSocket = s;
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += payload.length;
          if (!s.write(payload)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port0 = (server.address() as net.AddressInfo).port;
    running.upstreams.push({ port: port0, address: '', connections: 0, close: () => new Promise((r) => server.close(() => r())) });
    const { port } = await proxy([`127.0.0.1:${port0}`]);
    const client = net.connect(port, '127.0.0.1');
    client.pause();
    running.clients.push({ socket: client } as Client);
    await eventually(async () => upstreamSocket?.bytesWritten ?? 0, (n) => n > 0, 5_000);
    // The client reads nothing for a while: the proxy stops reading the upstream, so what the
    // upstream got rid of is bounded by socket buffers, not 64 MB.
    await new Promise((r) => setTimeout(r, 500));
    const heldAt = upstreamSocket!.bytesWritten;
    expect(heldAt).toBeLessThan(24 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 300));
    expect(upstreamSocket!.bytesWritten - heldAt).toBeLessThan(4 * 1024 * 1024);
    // Now it reads: every byte, in order.
    const hash = createHash('sha256');
    let received = 0;
    client.on('data', (d: Buffer) => {
      received += d.length;
      hash.update(d);
    });
    client.resume();
    await new Promise((r) => client.once('end', r));
    expect(received).toBe(total);
    const expected = createHash('sha256');
    for (let i = 0; i < total / payload.length; i++) expected.update(payload);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('passes an upstream reset on as a reset and keeps serving', async () => {
    const server = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port0 = (server.address() as net.AddressInfo).port;
    running.upstreams.push({ port: port0, address: '', connections: 0, close: () => new Promise((r) => server.close(() => r())) });
    const { shuttle, port } = await proxy([`127.0.0.1:${port0}`]);
    const c = await connect(port);
    c.socket.write('boom');
    expect(await c.closed).toBe(true); // closed with an error: ECONNRESET
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'access log');
    expect(access.error).toBe('SHUTTLE_E_UPSTREAM_RESET');
    const again = await connect(port);
    again.socket.write('x');
    expect(await again.closed).toBe(true);
  });

  it('replaces a killed worker while the other worker\'s open connection keeps working', async () => {
    const echo = up(await echoServer());
    const { shuttle, admin, port } = await proxy([echo.address]);
    const [c1, c2] = [await connect(port), await connect(port)];
    expect(await c1.echo('1')).toBe('1');
    expect(await c2.echo('2')).toBe('2');
    const before = await workers(admin);
    expect(before.workers.map((w) => w.active_connections)).toEqual([1, 1]);

    const victim = before.workers[0];
    const res = await fetch(`${admin}/workers/${victim.slot}/terminate`, { method: 'POST' });
    expect(res.status).toBe(202);
    // Exactly one of the two clients was on the victim; it is closed, the other is not.
    const first = await Promise.race([c1.closed.then(() => c1), c2.closed.then(() => c2)]);
    const survivor = first === c1 ? c2 : c1;
    await shuttle.waitForLog((l) => l.msg === 'worker exited unexpectedly; replacing it', 5_000, 'crash log');
    await shuttle.waitForLog((l) => l.msg === 'worker ready' && l.slot === victim.slot && l.worker !== victim.worker_id, 10_000, 'replacement worker');
    expect(await survivor.echo('still here')).toBe('still here');
    expect(survivor.socket.destroyed).toBe(false);

    const after = await workers(admin);
    expect(after.restarts).toBe(1);
    expect(after.workers[victim.slot].worker_id).not.toBe(victim.worker_id);
    expect(after.workers.every((w) => w.state === 'ready')).toBe(true);
    // New connections are served, on either worker.
    const fresh = await Promise.all([connect(port), connect(port)]);
    for (const c of fresh) expect(await c.echo('new')).toBe('new');
    // GET cannot terminate a worker.
    expect((await fetch(`${admin}/workers/0/terminate`)).status).toBe(405);
  });

  it('on SIGTERM stops accepting, lets an open connection finish, then exits 0', async () => {
    const echo = up(await echoServer());
    const { shuttle, admin, port } = await proxy([echo.address], { top: { drain_timeout: '20s' } });
    const c = await connect(port);
    expect(await c.echo('before')).toBe('before');
    shuttle.signal('SIGTERM');
    await shuttle.waitForLog((l) => l.msg.startsWith('draining: no new connections'), 5_000, 'drain start');
    expect((await fetch(`${admin}/ready`)).status).toBe(503);
    await expect(Client.connect(port)).rejects.toThrow(/ECONNREFUSED/);
    // The open connection still works while draining.
    expect(await c.echo('during drain')).toBe('during drain');
    expect(shuttle.exitCode).toBeUndefined();
    c.socket.end();
    expect(await shuttle.waitForExit(10_000)).toBe(0);
    await shuttle.waitForLog((l) => l.msg === 'stopped', 5_000, '"stopped"');
  });

  it('closes connections still open at the drain deadline, then exits 0', async () => {
    const echo = up(await echoServer());
    const { shuttle, port } = await proxy([echo.address], { top: { drain_timeout: '400ms' } });
    const c = await connect(port);
    expect(await c.echo('x')).toBe('x');
    shuttle.signal('SIGTERM');
    await c.closed;
    expect(await shuttle.waitForExit(10_000)).toBe(0);
    const access = await shuttle.waitForLog((l) => l.msg === 'access', 5_000, 'the access line');
    expect(access.error).toBe('SHUTTLE_E_DRAIN_DEADLINE');
  });

  // Regression: with the pid file written through fs/promises, a later SIGTERM killed the process
  // (default action) instead of draining it, whenever it was not the first process this test
  // worker spawned. The pid file is now written and removed synchronously.
  it('writes the pid file when ready, drains on SIGTERM, and removes the file on exit', async () => {
    const echo = up(await echoServer());
    const pidFile = join(mkdtempSync(join(tmpdir(), 'shuttle-pid-')), 'shuttle.pid');
    const shuttle = new ShuttleProcess(writeTempConfig(testConfig({
      listeners: [{ name: 'in', address: '127.0.0.1:0', cluster: 'backend' }],
      clusters: [{ name: 'backend', hosts: [echo.address] }],
    })), { threads: 2, args: ['--pid-file', pidFile] });
    running.shuttles.push(shuttle);
    await shuttle.ready();
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(shuttle.pid));
    shuttle.signal('SIGTERM');
    const code = await shuttle.waitForExit();
    expect({ code, signal: shuttle.child.signalCode, stderr: shuttle.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    await shuttle.waitForLog((l) => l.msg === 'stopped', 5_000, '"stopped"');
    expect(existsSync(pidFile)).toBe(false);
  });

  it('exits at once on a second stop signal, even with connections still draining', async () => {
    const echo = up(await echoServer());
    const { shuttle, port } = await proxy([echo.address], { top: { drain_timeout: '60s' } });
    const c = await connect(port);
    expect(await c.echo('x')).toBe('x');
    shuttle.signal('SIGTERM');
    await shuttle.waitForLog((l) => l.msg.startsWith('draining'), 5_000, 'drain start');
    shuttle.signal('SIGINT');
    expect(await shuttle.waitForExit(5_000)).toBe(1);
    await c.closed;
  });
});
