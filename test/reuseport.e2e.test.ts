/**
 * --balance reuseport: each worker binds its own listener and the kernel spreads connections.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, closedPort, echoServer, type Upstream } from './support/net.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';

let shuttle: ShuttleProcess | undefined;
let echo: Upstream | undefined;
const clients: Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await shuttle?.stop();
  await echo?.close();
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
});
