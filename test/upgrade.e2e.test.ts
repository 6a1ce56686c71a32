/**
 * In-place upgrade (SIGUSR2 / `shuttle upgrade`) through the real CLI, under load: listening
 * sockets are handed to the new process, the old one drains and exits.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream } from './support/http.ts';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { closedPort, echoServer } from './support/net.ts';
import { runCli, ShuttleProcess } from './support/shuttle.ts';
import { loop, tcpEcho } from './support/load.ts';
import { alive, stopByPidFile, upgradeInTurn } from './support/process.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('in-place upgrade', () => {
  it('upgrades 3 times under load: no refused connection, no failed HTTP request, old processes exit', async () => {
    const up = await httpUpstream('app');
    const echo = await echoServer();
    cleanup.push(() => up.close(), () => echo.close());
    const [webPort, tcpPort, boltPort, boltUpstream] = [await closedPort(), await closedPort(), await closedPort(), await closedPort()];
    const boltServer = spawn(process.execPath, [fileURLToPath(new URL('./support/bolt-server.ts', import.meta.url)), String(boltUpstream), 'bolt'], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanup.push(() => void boltServer.kill('SIGKILL'));
    await new Promise<void>((resolve) => boltServer.stdout!.on('data', (d) => String(d).includes('ready') && resolve()));
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-upgrade-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const drainMs = 2_000;
    writeFileSync(configFile, JSON.stringify({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      drain_timeout: `${drainMs}ms`,
      listeners: [
        { name: 'web', address: `127.0.0.1:${webPort}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ cluster: 'app' }] }] },
        { name: 'tcp', address: `127.0.0.1:${tcpPort}`, cluster: 'echo', access_log: false },
        { name: 'bolt', address: `127.0.0.1:${boltPort}`, protocol: 'bolt', access_log: false, rpc: { routes: [{ cluster: 'rpc' }] } },
      ],
      clusters: [{ name: 'app', hosts: [up.address] }, { name: 'echo', hosts: [echo.address] }, { name: 'rpc', hosts: [`127.0.0.1:${boltUpstream}`] }],
    }));
    const first = new ShuttleProcess(configFile, { threads: 2, args: ['--pid-file', pidFile] });
    cleanup.push(() => stopByPidFile(pidFile), () => first.stop());
    await first.ready();

    const keepAlive = new Agent({ keepAliveTimeout: 60_000, connections: 2 });
    const fresh = new Agent({ pipelining: 0 });
    cleanup.push(() => keepAlive.close(), () => fresh.close());
    const get = async (dispatcher: Agent) => {
      const res = await request(`http://127.0.0.1:${webPort}/x`, { dispatcher, reset: dispatcher === fresh, headersTimeout: 5_000, bodyTimeout: 5_000 });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body}`);
    };
    const loops = { keepAlive: loop(() => get(keepAlive)), fresh: loop(() => get(fresh)), tcp: loop(() => tcpEcho(tcpPort)) };
    // Long-lived Bolt clients (sofa-rpc-node), calling continuously.
    const { RpcClient } = createRequire(import.meta.url)('sofa-rpc-node').client;
    const quiet = { info() {}, warn() {}, debug() {}, error() {} };
    const boltLoops = [];
    for (let i = 0; i < 2; i++) {
      const client = new RpcClient({ logger: quiet });
      cleanup.push(() => client.close());
      await client.ready();
      const consumer = client.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${boltPort}` });
      await consumer.ready();
      boltLoops.push(loop(async () => {
        const r = await consumer.invoke('echo', ['x'], { responseTimeout: 5_000 });
        if (r !== 'bolt:x') throw new Error(`unexpected ${r}`);
      }));
    }

    // The pid file, read throughout (as systemd's PIDFile and `shuttle reload` read it): always a pid.
    // Regression: rewritten in place at each upgrade, it could be read empty (pid 0).
    const pidReads: string[] = [];
    const pidWatch = setInterval(() => pidReads.push(readFileSync(pidFile, 'utf8')), 2);
    const pids = await upgradeInTurn(pidFile, first.pid, 3, drainMs);
    clearInterval(pidWatch);
    expect(pidReads.length).toBeGreaterThan(100);
    expect(pidReads.filter((t) => !/^[1-9]\d*\n$/.test(t))).toEqual([]);
    await Promise.all([...Object.values(loops), ...boltLoops].map((l) => l.stop()));
    const bolt = boltLoops.reduce((n, l) => ({ ok: n.ok + l.counts.ok, failed: n.failed + l.counts.failed + l.counts.refused }), { ok: 0, failed: 0 });
    // Long-lived Bolt connections move to the new process (connection migration): no call fails.
    console.log(`upgrade x3 under load: keep-alive ${loops.keepAlive.counts.ok} ok, fresh ${loops.fresh.counts.ok} ok, tcp ${loops.tcp.counts.ok} ok; bolt ${bolt.ok} ok, ${bolt.failed} failed ${JSON.stringify(boltLoops.flatMap((l) => l.counts.errors).slice(0, 3))}`);
    expect(bolt.ok).toBeGreaterThan(10);
    expect(bolt.failed).toBe(0);
    for (const [name, l] of Object.entries(loops)) {
      expect({ name, ...l.counts, ok: l.counts.ok > 10 }).toEqual({ name, ok: true, refused: 0, failed: 0, errors: [] });
    }
    expect(new Set(pids).size).toBe(4);
    expect(Number(readFileSync(pidFile, 'utf8'))).toBe(pids[3]);
    expect(alive(pids[3])).toBe(true);
    for (const p of pids.slice(0, 3)) expect(alive(p)).toBe(false);
  }, 120_000);

  it('keeps the old process serving when the new one fails to start (rollback)', async () => {
    const up = await httpUpstream('app');
    cleanup.push(() => up.close());
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-upgrade-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const good = {
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ cluster: 'app' }] }] }],
      clusters: [{ name: 'app', hosts: [up.address] }],
    };
    writeFileSync(configFile, JSON.stringify(good));
    const shuttle = new ShuttleProcess(configFile, { threads: 2, args: ['--pid-file', pidFile] });
    cleanup.push(() => shuttle.stop());
    const { listeners } = await shuttle.ready();
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    cleanup.push(() => agent.close());
    const l = loop(async () => {
      const res = await request(`http://127.0.0.1:${listeners.web.port}/`, { dispatcher: agent });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    });

    // The new process reads a broken config from disk and exits at start-up.
    writeFileSync(configFile, '{ "version": 1, "listeners": "broken" }');
    const r = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/upgrade failed; pid \d+ keeps serving: the new process exited before it was ready/);
    expect(Number(readFileSync(pidFile, 'utf8'))).toBe(shuttle.pid);
    await shuttle.waitForLog((x) => x.msg === 'upgrade failed; this process keeps serving');

    // Fixed config: the next upgrade works.
    writeFileSync(configFile, JSON.stringify(good));
    const r2 = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    expect(r2.code).toBe(0);
    cleanup.push(() => stopByPidFile(pidFile));
    await l.stop();
    expect(l.counts).toMatchObject({ refused: 0, failed: 0, errors: [] });
    expect(l.counts.ok).toBeGreaterThan(10);
  }, 60_000);

  it('refuses a second upgrade while one is in progress', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-upgrade-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    writeFileSync(configFile, JSON.stringify({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      drain_timeout: '1s',
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'ok' } }] }] }],
      clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
    }));
    const shuttle = new ShuttleProcess(configFile, { threads: 1, args: ['--pid-file', pidFile] });
    cleanup.push(() => stopByPidFile(pidFile), () => shuttle.stop());
    await shuttle.ready();
    process.kill(shuttle.pid, 'SIGUSR2');
    await shuttle.waitForLog((l) => l.msg === 'upgrade: starting the new process');
    process.kill(shuttle.pid, 'SIGUSR2');
    const refused = await shuttle.waitForLog((l) => l.msg === 'upgrade refused');
    expect(refused.reason).toBe('an upgrade is already in progress');
    await shuttle.waitForLog((l) => l.msg === 'upgrade: the new process serves; this one drains', 15_000);
    expect(await shuttle.waitForExit(10_000)).toBe(0);
    expect(shuttle.logs.filter((l) => l.msg === 'upgrade: starting the new process')).toHaveLength(1);
    const newPid = Number(readFileSync(pidFile, 'utf8'));
    expect(newPid).not.toBe(shuttle.pid);
    expect(alive(newPid)).toBe(true);
  });
});
