/**
 * --balance reuseport: each worker binds its own listener and the kernel spreads connections.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream } from './support/http.ts';
import { loop, tcpEcho, totalOf } from './support/load.ts';
import { Client, closedPort, echoServer, type Upstream } from './support/net.ts';
import { alive, stopByPidFile, upgradeInTurn } from './support/process.ts';
import { runCli, ShuttleProcess as CliProcess, startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

/** Inodes of the sockets listening on 127.0.0.1:port (from /proc/net/tcp), sorted. */
function listeningSockets(port: number): string[] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[1] === local && f[3] === '0A').map((f) => f[9]).sort();
}

let shuttle: ShuttleProcess | undefined;
let echo: Upstream | undefined;
const clients: Client[] = [];
const cleanup: (() => Promise<unknown> | void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await shuttle?.stop();
  await echo?.close();
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('reuseport balancing', () => {
  it('serves on one port from both workers, each with its own listener', async () => {
    echo = await echoServer();
    const port = await closedPort();
    shuttle = startShuttle(testConfig({
      listeners: [{ name: 'in', address: `127.0.0.1:${port}`, cluster: 'c' }],
      clusters: [{ name: 'c', hosts: [echo.address] }],
    }), { threads: 2, balance: 'reuseport' });
    const { admin, listeners } = await shuttle.ready();
    expect(listeners.in.port).toBe(port);
    for (let i = 0; i < 24; i++) {
      const c = await Client.connect(port);
      clients.push(c);
      expect(await c.echo(`n${i}`)).toBe(`n${i}`);
    }
    const body = (await (await fetch(`${admin}/workers`)).json()) as { balance: string; workers: { active_connections: number }[] };
    expect(body.balance).toBe('reuseport');
    const counts = body.workers.map((w) => w.active_connections);
    expect(counts[0] + counts[1]).toBe(24);
    // The kernel hashes connections over both sockets; all 24 on one worker has odds of 2^-23.
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it('refuses port 0, which would give each worker a different port', async () => {
    echo = await echoServer();
    shuttle = startShuttle(testConfig({
      listeners: [{ name: 'in', address: '127.0.0.1:0', cluster: 'c' }],
      clusters: [{ name: 'c', hosts: [echo.address] }],
    }), { threads: 2, balance: 'reuseport' });
    expect(await shuttle.waitForExit()).toBe(1);
    expect(shuttle.stderr).toMatch(/reuseport needs a fixed port/);
  });

  it('upgrades 3 times under a new connection per request: the new process adopts the workers\' sockets, 0 refused, 0 reset', async () => {
    // Closing a SO_REUSEPORT socket resets what waits in its accept queue: the old workers' sockets
    // must reach the new process, not be closed under the clients (workers/own-listeners.ts).
    const up = await httpUpstream('app');
    echo = await echoServer();
    cleanup.push(() => up.close());
    const [web, tcp] = [await closedPort(), await closedPort()];
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-reuseport-upgrade-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const drainMs = 2_000;
    writeFileSync(configFile, JSON.stringify(testConfig({
      drain_timeout: `${drainMs}ms`,
      listeners: [
        { name: 'web', address: `127.0.0.1:${web}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ cluster: 'app' }] }] },
        { name: 'tcp', address: `127.0.0.1:${tcp}`, cluster: 'echo', access_log: false },
      ],
      clusters: [{ name: 'app', hosts: [up.address] }, { name: 'echo', hosts: [echo.address] }],
    })));
    const first = new CliProcess(configFile, { threads: 2, balance: 'reuseport', args: ['--pid-file', pidFile] });
    cleanup.push(() => stopByPidFile(pidFile), () => first.stop());
    await first.ready();
    const fresh = new Agent({ pipelining: 0 });
    cleanup.push(() => fresh.close());
    const get = async () => {
      const res = await request(`http://127.0.0.1:${web}/x`, { dispatcher: fresh, reset: true, headersTimeout: 5_000, bodyTimeout: 5_000 });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    };
    // Many loops at once, so that connections wait in the sockets' accept queues at every moment.
    const loops = [...Array.from({ length: 4 }, () => loop(get)), ...Array.from({ length: 24 }, () => loop(() => tcpEcho(tcp)))];
    // The listening sockets themselves: the same ones serve before and after (none closed, none new).
    const sockets = { web: listeningSockets(web), tcp: listeningSockets(tcp) };
    expect([sockets.web.length, sockets.tcp.length]).toEqual([2, 2]);
    const pids = await upgradeInTurn(pidFile, first.pid, 3, drainMs);
    await Promise.all(loops.map((l) => l.stop()));
    const total = totalOf(loops);
    console.log(`reuseport upgrade x3 under new connections: ${JSON.stringify(total)}`);
    expect(total.ok).toBeGreaterThan(100);
    expect(total).toEqual({ ok: total.ok, refused: 0, failed: 0, errors: [] });
    expect(alive(pids[3])).toBe(true);
    for (const p of pids.slice(0, 3)) expect(alive(p)).toBe(false);
    expect({ web: listeningSockets(web), tcp: listeningSockets(tcp) }).toEqual(sockets);
  }, 120_000);

  it('replaces the workers on a thread-count reload: the new ones adopt the old ones\' sockets, 0 refused, 0 reset', async () => {
    echo = await echoServer();
    const tcp = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-reuseport-reload-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const config = (threads: number) => JSON.stringify(testConfig({
      drain_timeout: '1s',
      workers: { threads },
      listeners: [{ name: 'tcp', address: `127.0.0.1:${tcp}`, cluster: 'echo', access_log: false }],
      clusters: [{ name: 'echo', hosts: [echo!.address] }],
    }));
    writeFileSync(configFile, config(2));
    const proc = new CliProcess(configFile, { threads: 2, balance: 'reuseport', args: ['--pid-file', pidFile] });
    cleanup.push(() => proc.stop());
    const { admin } = await proc.ready();
    const workerStates = async () => ((await (await fetch(`${admin}/workers`)).json()) as { workers: { state: string }[] }).workers.map((w) => w.state);
    const readyWorkers = async () => (await workerStates()).filter((s) => s === 'ready').length;
    const first = listeningSockets(tcp);
    expect(first).toHaveLength(2);
    const loops = Array.from({ length: 16 }, () => loop(() => tcpEcho(tcp)));
    // 2 → 3 threads: the two sockets go to two new workers, the third binds one more.
    writeFileSync(configFile, config(3));
    expect((await runCli(['reload', '--pid-file', pidFile], { timeoutMs: 30_000 })).code).toBe(0);
    await eventually(readyWorkers, (n) => n === 3);
    const grown = listeningSockets(tcp);
    expect(grown).toHaveLength(3);
    expect(grown).toEqual(expect.arrayContaining(first));
    // 3 → 1: the one new worker serves all three sockets (closing one would reset its queue).
    writeFileSync(configFile, config(1));
    expect((await runCli(['reload', '--pid-file', pidFile], { timeoutMs: 30_000 })).code).toBe(0);
    // The old workers drain (1 s) and exit; the bound adds their 2 s backstop and slack.
    await eventually(workerStates, (states) => states.length === 1 && states[0] === 'ready', 1_000 + 2_000 + 10_000);
    expect(listeningSockets(tcp)).toEqual(grown);
    await Promise.all(loops.map((l) => l.stop()));
    const total = totalOf(loops);
    expect(total.ok).toBeGreaterThan(100);
    expect(total).toEqual({ ok: total.ok, refused: 0, failed: 0, errors: [] });
  }, 60_000);
});
