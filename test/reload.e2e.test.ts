/**
 * Reload under load through the real CLI: `shuttle reload` (SIGHUP) while HTTP (keep-alive and
 * fresh connections) and TCP traffic runs.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream } from './support/http.ts';
import { Client, closedPort, echoServer, type Upstream } from './support/net.ts';
import { loop, tcpEcho } from './support/load.ts';
import { startBoltServer } from './support/bolt-upstream.ts';
import { runCli, ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const require = createRequire(import.meta.url);

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function workdir(): { dir: string; configFile: string; pidFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-reload-'));
  return { dir, configFile: join(dir, 'shuttle.json'), pidFile: join(dir, 'shuttle.pid') };
}

async function startWith(config: object, files: { configFile: string; pidFile: string }): Promise<{ shuttle: ShuttleProcess; admin: string }> {
  writeFileSync(files.configFile, JSON.stringify(config));
  const shuttle = new ShuttleProcess(files.configFile, { threads: 2, args: ['--pid-file', files.pidFile] });
  cleanup.push(() => shuttle.stop());
  const { admin } = await shuttle.ready();
  return { shuttle, admin };
}

async function reload(config: object | string, files: { configFile: string; pidFile: string }) {
  writeFileSync(files.configFile, typeof config === 'string' ? config : JSON.stringify(config));
  return runCli(['reload', '--pid-file', files.pidFile], { timeoutMs: 30_000 });
}

describe('reload on SIGHUP', () => {
  it('reloads 20 times under HTTP and TCP load with no refused connection and no failed request', async () => {
    const blue = await httpUpstream('blue');
    const green = await httpUpstream('green');
    const echo = await echoServer();
    cleanup.push(() => blue.close(), () => green.close(), () => echo.close());
    const [webPort, tcpPort, extraPort] = [await closedPort(), await closedPort(), await closedPort()];
    const files = workdir();
    const config = (color: 'blue' | 'green', withExtra: boolean) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      drain_timeout: '2s',
      listeners: [
        { name: 'web', address: `127.0.0.1:${webPort}`, protocol: 'http', access_log: false,
          virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: color }] }] },
        { name: 'echo', address: `127.0.0.1:${tcpPort}`, protocol: 'tcp', cluster: 'echo', access_log: false },
        ...(withExtra ? [{ name: 'extra', address: `127.0.0.1:${extraPort}`, protocol: 'http', virtual_hosts: [{ name: 'x', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'extra' } }] }] }] : []),
      ],
      clusters: [
        { name: 'blue', hosts: [blue.address] },
        { name: 'green', hosts: [green.address] },
        { name: 'echo', hosts: [echo.address] },
      ],
    });
    const { admin } = await startWith(config('blue', false), files);
    const base = `http://127.0.0.1:${webPort}`;
    const keepAlive = new Agent({ keepAliveTimeout: 30_000, connections: 2 });
    const fresh = new Agent({ pipelining: 0 }); // a new connection per request
    cleanup.push(() => keepAlive.close(), () => fresh.close());

    const getVia = async (dispatcher: Agent, path = '/color') => {
      const res = await request(`${base}${path}`, { dispatcher, reset: dispatcher === fresh });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body}`);
      return body;
    };
    const loops = [
      loop(async () => void (await getVia(keepAlive))),
      loop(async () => void (await getVia(fresh))),
      loop(() => tcpEcho(tcpPort)),
    ];

    let generation = 1;
    for (let i = 1; i <= 20; i++) {
      const color = i % 2 ? 'green' : 'blue';
      const withExtra = i % 2 === 1;
      const { code, stdout, stderr } = await reload(config(color, withExtra), files);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      generation++;
      expect(stdout).toContain(`generation ${generation}`);
      // New requests, on a kept-alive connection too, go to the new cluster.
      expect(await getVia(keepAlive)).toBe(`${color} GET /color`);
      expect(await getVia(fresh)).toBe(`${color} GET /color`);
      // The added listener serves; once removed, it refuses new connections.
      const once = new Agent();
      if (withExtra) {
        const res = await request(`http://127.0.0.1:${extraPort}/`, { dispatcher: once });
        expect(await res.body.text()).toBe('extra');
      } else {
        await expect(request(`http://127.0.0.1:${extraPort}/`, { dispatcher: once })).rejects.toThrow(/ECONNREFUSED/);
      }
      await once.close();
    }
    for (const l of loops) await l.stop();
    const [ka, fr, tcp] = loops.map((l) => l.counts);
    // Figures for the record (visible with --reporter=verbose).
    console.log(`reload x20 under load: keep-alive ${ka.ok} ok, fresh ${fr.ok} ok, tcp ${tcp.ok} ok`);
    for (const s of [ka, fr, tcp]) {
      expect(s.errors).toEqual([]);
      expect(s.refused + s.failed).toBe(0);
      expect(s.ok).toBeGreaterThan(20);
    }
    const dump = (await (await fetch(`${admin}/config_dump`)).json()) as { generation: number; reload: { attempts: number; failures: number } };
    expect(dump.generation).toBe(21);
    expect(dump.reload).toMatchObject({ attempts: 20, failures: 0 });
  }, 120_000);

  it('keeps the running config when the new one is invalid, and the next valid reload works', async () => {
    const blue = await httpUpstream('blue');
    const green = await httpUpstream('green');
    cleanup.push(() => blue.close(), () => green.close());
    const files = workdir();
    const config = (color: string) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: color }] }] }],
      clusters: [{ name: 'blue', hosts: [blue.address] }, { name: 'green', hosts: [green.address] }],
    });
    const { shuttle, admin } = await startWith(config('blue'), files);
    const { listeners } = await shuttle.ready();
    const get = async () => (await (await fetch(`http://127.0.0.1:${listeners.web.port}/`)).text());
    expect(await get()).toBe('blue GET /');

    const bad = JSON.stringify({ ...config('purple'), clusters: [{ name: 'blue', hosts: ['nope'] }] });
    const r1 = await reload(bad, files);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain('clusters[0].hosts[0]: expected host:port');
    expect(r1.stderr).toContain('listeners[0].virtual_hosts[0].routes[0].cluster: unknown cluster "purple"');
    expect(await get()).toBe('blue GET /');
    const log = await shuttle.waitForLog((l) => l.msg.startsWith('config reload rejected'));
    expect(log.problems).toEqual(expect.arrayContaining([expect.stringContaining('clusters[0].hosts[0]')]));
    let dump = (await (await fetch(`${admin}/config_dump`)).json()) as { generation: number; reload: { failures: number; last_error: string } };
    expect(dump.generation).toBe(1);
    expect(dump.reload.failures).toBe(1);
    expect(await (await fetch(`${admin}/metrics`)).text()).toContain('shuttle_config_reloads_total{result="failure"} 1');

    const r2 = await reload('{ this is not json', files);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/cannot parse/);

    const r3 = await reload(config('green'), files);
    expect(r3.code).toBe(0);
    expect(await get()).toBe('green GET /');
    dump = (await (await fetch(`${admin}/config_dump`)).json()) as typeof dump;
    expect(dump.generation).toBe(2);
  });

  it('keeps the health state of unchanged hosts (no re-probing) and probes only new ones', async () => {
    let probes = 0;
    const checked = net.createServer((s) => {
      probes++;
      s.destroy();
    });
    await new Promise<void>((r) => checked.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => checked.close(() => r())));
    const live = `127.0.0.1:${(checked.address() as net.AddressInfo).port}`;
    const down = `127.0.0.1:${await closedPort()}`;
    const extra: Upstream = await echoServer();
    cleanup.push(() => extra.close());
    const files = workdir();
    const config = (routeTo: string, withExtra: boolean) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'tcp', address: '127.0.0.1:0', cluster: routeTo }],
      clusters: [
        { name: 'checked', hosts: [live, down, ...(withExtra ? [extra.address] : [])], health_check: { type: 'tcp', interval: '60s', timeout: '500ms' } },
        { name: 'other', hosts: [live] },
      ],
    });
    const { admin } = await startWith(config('checked', false), files);
    type View = { name: string; hosts: { address: string; health: string }[] }[];
    const view = async () => (await (await fetch(`${admin}/clusters`)).json()) as View;
    expect((await view())[0].hosts.map((h) => h.health)).toEqual(['healthy', 'unhealthy']);
    expect(probes).toBe(1);

    expect((await reload(config('other', false), files)).code).toBe(0);
    expect((await view())[0].hosts.map((h) => h.health)).toEqual(['healthy', 'unhealthy']);
    expect(probes).toBe(1); // no new probe of an unchanged host

    // A host added to the cluster changes the cluster's health_check host set: only the new one is probed.
    expect((await reload(config('checked', true), files)).code).toBe(0);
    const v = await view();
    expect(v[0].hosts.map((h) => [h.address, h.health])).toEqual([[live, 'healthy'], [down, 'unhealthy'], [extra.address, 'healthy']]);
    expect(probes).toBe(1);
    expect(extra.connections).toBe(1); // its first probe
  });

  it('keeps upstream keep-alive connections across a reload, and closes them when their pool settings change', async () => {
    // Each upstream socket gets a number; the answer says which socket served it.
    const socketIds = new Map<net.Socket, number>();
    const open = new Set<number>();
    let closedSeen: (() => void) | undefined;
    const up = await httpUpstream('up', (req, res) => {
      const sock = req.socket;
      if (!socketIds.has(sock)) {
        const id = socketIds.size + 1;
        socketIds.set(sock, id);
        open.add(id);
        sock.once('close', () => {
          open.delete(id);
          closedSeen?.();
        });
      }
      res.end(String(socketIds.get(sock)));
    });
    cleanup.push(() => up.close());
    const files = workdir();
    const config = (maxRequests: number) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{
        name: 'web', address: '127.0.0.1:0', protocol: 'http',
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }],
      }],
      clusters: [{ name: 'up', hosts: [up.address], connection_pool: { max_requests_per_connection: maxRequests } }],
    });
    const { shuttle } = await startWith(config(1000), files);
    const port = (await shuttle.ready()).listeners.web.port;
    const agent = new Agent({ connections: 1 }); // one downstream connection: one worker, one pool
    cleanup.push(() => agent.close());
    const get = async () => (await (await request(`http://127.0.0.1:${port}/`, { dispatcher: agent })).body.text());

    const first = await get();
    expect(await get()).toBe(first);
    expect((await reload(config(1000), files)).code).toBe(0); // same settings: the pool stays
    expect(await get()).toBe(first);

    const closed = new Promise<void>((resolve) => (closedSeen = () => !open.has(Number(first)) && resolve()));
    expect((await reload(config(500), files)).code).toBe(0); // new settings: the old pool drains
    // Its idle connection is closed at the reload, not left to its idle timeout (60 s).
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the old pool kept its connection')), 5_000)));
    await Promise.race([closed, late]).finally(() => clearTimeout(timer));
    expect(await get()).not.toBe(first);
  });

  it('closes multiplexed RPC connections whose pool settings changed once their calls are answered', async () => {
    const server = await startBoltServer('a');
    cleanup.push(() => void server.child.kill('SIGKILL'));
    const port = server.port;
    const files = workdir();
    const config = (connectionsPerHost: number) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'bolt', address: '127.0.0.1:0', protocol: 'bolt', rpc: { routes: [{ cluster: 'echo' }], connections_per_host: connectionsPerHost } }],
      clusters: [{ name: 'echo', hosts: [`127.0.0.1:${port}`] }],
    });
    const { shuttle, admin } = await startWith(config(1), files);
    const boltPort = (await shuttle.ready()).listeners.bolt.port;
    const { RpcClient } = require('sofa-rpc-node').client;
    const quiet = { info() {}, warn() {}, debug() {}, error() {} };
    const client = new RpcClient({ logger: quiet });
    cleanup.push(() => client.close());
    const consumer = client.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${boltPort}` });
    await consumer.ready();
    const active = async () => ((await (await fetch(`${admin}/clusters`)).json()) as { hosts: { active_connections: number }[] }[])[0].hosts[0].active_connections;

    // A call in flight on the worker's one upstream connection while the settings change.
    const started = server.slowCallStarted();
    const slow = consumer.invoke('slow', [800], { responseTimeout: 5_000 }) as Promise<string>;
    await started;
    expect(await active()).toBe(1);
    expect((await reload(config(2), files)).code).toBe(0);
    expect(await slow).toBe('a:slow'); // the drained connection still answers what it carries…
    await eventually(active, (n) => n === 0); // …then closes, instead of staying open for good
    expect(await consumer.invoke('echo', ['after'], { responseTimeout: 5_000 })).toBe('a:after'); // a new pool serves
  });

  it('replaces the worker threads when the thread count changes: new ones serve, old ones drain', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.close());
    const files = workdir();
    const config = (threads: number) => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      drain_timeout: '1s',
      workers: { threads },
      listeners: [{ name: 'tcp', address: '127.0.0.1:0', cluster: 'echo' }],
      clusters: [{ name: 'echo', hosts: [echo.address] }],
    });
    const { shuttle, admin } = await startWith(config(2), files);
    const { listeners } = await shuttle.ready();
    type Workers = { workers: { worker_id: number; state: string; active_connections: number }[] };
    const workers = async () => ((await (await fetch(`${admin}/workers`)).json()) as Workers).workers;
    const before = (await workers()).map((w) => w.worker_id);
    expect(before).toHaveLength(2);

    const held = await Client.connect(listeners.tcp.port);
    cleanup.push(() => void held.socket.destroy());
    expect(await held.echo('before')).toBe('before');

    const r = await reload(config(3), files);
    expect(r.code).toBe(0);
    const after = await workers();
    const ready = after.filter((w) => w.state === 'ready');
    expect(ready).toHaveLength(3);
    expect(ready.every((w) => !before.includes(w.worker_id))).toBe(true);
    // The old worker holding a connection drains: the connection still works for now…
    expect(await held.echo('during drain')).toBe('during drain');
    // …new connections go to the new workers…
    for (let i = 0; i < 6; i++) await tcpEcho(listeners.tcp.port);
    // …and at the drain deadline the old workers close what is left and exit.
    await held.closed;
    for (const id of before) await shuttle.waitForLog((l) => l.msg === 'worker exited' && l.worker === id, 5_000, `worker ${id} to exit`);
    const final = await workers();
    expect(final.map((w) => w.state)).toEqual(['ready', 'ready', 'ready']);
    expect(shuttle.logs.some((l) => l.msg === 'worker exited unexpectedly; replacing it')).toBe(false);
  });
});
