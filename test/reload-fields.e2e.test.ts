/**
 * A reload applies every field it reports as changed, or is refused naming the fields that need a
 * restart: log.level reaches the main thread and every worker, admin.allowed_hosts the admin API;
 * admin.address is refused by a reload and applied by an in-place upgrade.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closedPort } from './support/net.ts';
import { runCli, ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function files() {
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-reload-fields-'));
  return { configFile: join(dir, 'shuttle.json'), pidFile: join(dir, 'shuttle.pid') };
}

/** A TCP listener whose cluster refuses connections: each connection logs a worker debug line. */
function config(deadPort: number, over: { level?: string; admin?: Record<string, unknown> } = {}) {
  return {
    version: 1,
    admin: { address: '127.0.0.1:0', ...over.admin },
    log: { level: over.level ?? 'info' },
    drain_timeout: '1s',
    listeners: [{ name: 'tcp', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'dead', max_connect_attempts: 1 }],
    clusters: [{ name: 'dead', connect_timeout: '1s', hosts: [`127.0.0.1:${deadPort}`] }],
  };
}

/** Connects and waits for Shuttle to close the connection (its upstream is refused). */
function poke(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

async function reload(f: { configFile: string; pidFile: string }, body: object) {
  writeFileSync(f.configFile, JSON.stringify(body));
  return runCli(['reload', '--pid-file', f.pidFile], { timeoutMs: 30_000 });
}

function adminGet(address: string, path: string, host?: string): Promise<number> {
  const url = new URL(path, address);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(url.port), url.hostname);
    let text = '';
    s.on('connect', () => s.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${host ?? url.host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => (text += d));
    s.on('error', reject);
    s.on('close', () => resolve(Number(text.split(' ')[1])));
  });
}

describe('reload applies what it reports', () => {
  it('applies log.level to the main thread and every worker, and says what changed', async () => {
    const f = files();
    const dead = await closedPort();
    writeFileSync(f.configFile, JSON.stringify(config(dead)));
    const shuttle = new ShuttleProcess(f.configFile, { threads: 2, args: ['--pid-file', f.pidFile] });
    cleanup.push(() => shuttle.stop());
    const { listeners } = await shuttle.ready();
    const port = listeners.tcp.port;
    const workerDebug = () => shuttle.logs.filter((l) => l.msg === 'upstream connect failed' && l.level === 'debug' && l.worker !== undefined);

    for (let i = 0; i < 4; i++) await poke(port);
    await shuttle.waitForLog((l) => l.msg === 'access' && l.error === 'SHUTTLE_E_UPSTREAM_CONNECT_FAILED');
    expect(workerDebug()).toHaveLength(0);

    const toDebug = await reload(f, config(dead, { level: 'debug' }));
    expect(toDebug.code).toBe(0);
    expect(toDebug.stdout).toMatch(/changed: log\.level/);
    // Connections opened together spread over both workers (least loaded): each logs at debug now.
    const workers = await eventually(async () => {
      await Promise.all(Array.from({ length: 8 }, () => poke(port)));
      return [...new Set(workerDebug().map((l) => l.worker))];
    }, (w) => w.length === 2);
    expect(workers).toHaveLength(2);

    // Down to warn: no access line (info) from workers, no "config reloaded" (info) from main.
    const toWarn = await reload(f, config(dead, { level: 'warn' }));
    expect(toWarn.code).toBe(0);
    const before = shuttle.logs.length;
    for (let i = 0; i < 4; i++) await poke(port);
    await reload(f, config(dead, { level: 'warn', admin: { allowed_hosts: ['x.example'] } }));
    await new Promise((r) => setTimeout(r, 200));
    expect(shuttle.logs.slice(before).filter((l) => ['info', 'debug'].includes(l.level)).map((l) => l.msg)).toEqual([]);

    // Workers started after the change log at the new level too (a replaced worker).
    const { admin } = await shuttle.ready();
    const res = await fetch(`${admin}/workers/0/terminate`, { method: 'POST' });
    expect(res.status).toBeLessThan(300);
    await reload(f, config(dead, { level: 'debug', admin: { allowed_hosts: ['x.example'] } }));
    for (let i = 0; i < 6; i++) await poke(port);
    await eventually(async () => workerDebug().filter((l) => l.worker >= 2).length, (n) => n > 0);
  });

  it('applies admin.allowed_hosts at once', async () => {
    const f = files();
    const dead = await closedPort();
    writeFileSync(f.configFile, JSON.stringify(config(dead)));
    const shuttle = new ShuttleProcess(f.configFile, { threads: 1, args: ['--pid-file', f.pidFile] });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    expect(await adminGet(admin, '/ready', 'proxy.example')).toBe(403);
    const r = await reload(f, config(dead, { admin: { allowed_hosts: ['proxy.example'] } }));
    expect(r.stdout).toMatch(/changed: admin\.allowed_hosts/);
    expect(await adminGet(admin, '/ready', 'proxy.example')).toBe(200);
  });

  it('refuses a reload that moves the admin API, naming the field; an upgrade moves it', async () => {
    const f = files();
    const dead = await closedPort();
    const [first, second] = [await closedPort(), await closedPort()];
    writeFileSync(f.configFile, JSON.stringify(config(dead, { admin: { address: `127.0.0.1:${first}` } })));
    const shuttle = new ShuttleProcess(f.configFile, { threads: 1, args: ['--pid-file', f.pidFile] });
    cleanup.push(async () => {
      await shuttle.stop();
      const pid = Number(readFileSync(f.pidFile, 'utf8'));
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
    });
    await shuttle.ready();
    const moved = config(dead, { level: 'debug', admin: { address: `127.0.0.1:${second}` } });
    const r = await reload(f, moved);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/admin\.address: changed, but the admin API keeps its listening socket until a restart or an in-place upgrade/);
    // Refused whole: the level in the same file was not applied either.
    const status = JSON.parse(readFileSync(`${f.pidFile}.reload.json`, 'utf8'));
    expect(status).toMatchObject({ ok: false, generation: 1 });
    expect(shuttle.logs.some((l) => l.level === 'debug')).toBe(false);

    const up = await runCli(['upgrade', '--pid-file', f.pidFile], { timeoutMs: 60_000 });
    expect(up.code).toBe(0);
    expect(await adminGet(`http://127.0.0.1:${second}`, '/ready')).toBe(200);
    await eventually(async () => adminGet(`http://127.0.0.1:${first}`, '/ready').then(() => 'open', () => 'closed'), (s) => s === 'closed', 15_000);
  });
});
