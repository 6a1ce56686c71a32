/**
 * Logs: --log-format json|pretty (pretty by default on a terminal), access logs to a file or
 * stdout with a chosen field set per listener (HTTP, TCP and Bolt), reopened on SIGUSR1 for log
 * rotation, written whatever the log level; access_log: false still silences a listener.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boltConsumer, startBoltServer, type BoltUpstream } from './support/bolt-upstream.ts';
import { httpUpstream, type HttpUpstream } from './support/http.ts';
import { closedPort, echoServer } from './support/net.ts';
import { runCli, SHUTTLE_BIN, ShuttleProcess, testConfig, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'shuttle-logs-'));
const httpLog = join(dir, 'http-access.log');
const clients: { close(): Promise<void> }[] = [];
let app: HttpUpstream;
let echo: Awaited<ReturnType<typeof echoServer>>;
let bolt: BoltUpstream;
let shuttle: ShuttleProcess;
let ports: Record<string, number>;

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

function tcpRoundTrip(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end('ping'));
    s.on('data', () => {});
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

beforeAll(async () => {
  app = await httpUpstream('app');
  echo = await echoServer();
  bolt = await startBoltServer('a');
  // Fixed ports: at level warn there is no "shuttle ready" line to read them from.
  ports = { admin: await closedPort(), web: await closedPort(), tcp: await closedPort(), bolt: await closedPort(), quiet: await closedPort() };
  const at = (name: string) => `127.0.0.1:${ports[name]}`;
  // The config lives in `dir`: relative access-log paths are resolved against its folder.
  const configFile = join(dir, 'shuttle.json');
  writeFileSync(configFile, JSON.stringify(testConfig({
    admin: { address: at('admin') },
    log: { level: 'warn' }, // file access logs do not depend on the log level
    listeners: [
      { name: 'web', address: at('web'), protocol: 'http', access_log: { path: 'http-access.log', fields: ['time', 'method', 'path', 'status', 'duration_ms', 'upstream'] },
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'app' }] }] },
      { name: 'tcp', address: at('tcp'), protocol: 'tcp', cluster: 'echo', access_log: { path: join(dir, 'tcp-access.log') } },
      { name: 'bolt', address: at('bolt'), protocol: 'bolt', access_log: { path: join(dir, 'rpc-access.log'), fields: ['service', 'method', 'status'] }, rpc: { routes: [{ cluster: 'bolt' }] } },
      { name: 'quiet', address: at('quiet'), protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'app' }] }] },
    ],
    clusters: [{ name: 'app', hosts: [app.address] }, { name: 'echo', hosts: [echo.address] }, { name: 'bolt', hosts: [`127.0.0.1:${bolt.port}`] }],
  })));
  shuttle = new ShuttleProcess(configFile, { threads: 2 });
  await eventually(() => fetch(`http://${at('admin')}/ready`).then((r) => r.status, () => 0), (s) => s === 200, 20_000);
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await shuttle?.stop();
  await app?.close();
  await echo?.close();
  bolt?.child.kill('SIGKILL');
});

describe('access logs', () => {
  it('writes HTTP, TCP and Bolt access lines to their files with the chosen fields, at any log level', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`http://127.0.0.1:${ports.web}/hello/${i}`)).status).toBe(200);
    for (let i = 0; i < 3; i++) await tcpRoundTrip(ports.tcp);
    const invoke = await boltConsumer(ports.bolt, clients);
    expect(await invoke('echo', ['hi'])).toBe('a:hi');

    const http = await eventually(async () => lines(httpLog), (l) => l.length === 5);
    expect(http.map((l) => l.path).sort()).toEqual(['/hello/0', '/hello/1', '/hello/2', '/hello/3', '/hello/4']);
    for (const l of http) {
      expect(Object.keys(l).sort()).toEqual(['duration_ms', 'method', 'path', 'status', 'time', 'upstream']);
      expect(l).toMatchObject({ method: 'GET', status: 200, upstream: app.address });
      expect(Date.parse(l.time)).toBeGreaterThan(Date.now() - 60_000);
    }
    // No field set: every field of the protocol, and the time.
    const tcp = await eventually(async () => lines(join(dir, 'tcp-access.log')), (l) => l.length === 3);
    expect(tcp[0]).toMatchObject({ listener: 'tcp', cluster: 'echo', upstream: echo.address, bytes_received: 4, bytes_sent: 4, error: null });
    expect(tcp[0].time).toBeDefined();
    expect(tcp[0].msg).toBeUndefined();
    const rpc = await eventually(async () => lines(join(dir, 'rpc-access.log')), (l) => l.length === 1);
    expect(Object.keys(rpc[0]).sort()).toEqual(['method', 'service', 'status']); // Bolt v1 carries no method header: null
    expect(rpc[0]).toMatchObject({ service: 'com.example.Echo:1.0', status: 0 });
    // log.level is warn: nothing reached stdout.
    expect(shuttle.logs.filter((l) => l.msg === 'access')).toEqual([]);
  });

  it('keeps access_log: false silent', async () => {
    expect((await fetch(`http://127.0.0.1:${ports.quiet}/x`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(lines(httpLog).some((l) => l.path === '/x')).toBe(false);
    expect(shuttle.logs.some((l) => l.listener === 'quiet')).toBe(false);
  });

  it('reopens the files on SIGUSR1 (log rotation)', async () => {
    const before = lines(httpLog).length;
    renameSync(httpLog, `${httpLog}.1`);
    expect((await fetch(`http://127.0.0.1:${ports.web}/before-reopen`)).status).toBe(200);
    // Until reopened, lines go on into the renamed file (the same open file).
    await eventually(async () => lines(`${httpLog}.1`).length, (n) => n === before + 1);
    shuttle.signal('SIGUSR1');
    await eventually(async () => {
      await fetch(`http://127.0.0.1:${ports.web}/after-reopen`);
      return lines(httpLog);
    }, (l) => l.some((x) => x.path === '/after-reopen'));
  });
});

describe('access log to stdout with fields', () => {
  it('keeps msg and the chosen fields only', async () => {
    const s = new ShuttleProcess(writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', access_log: { fields: ['status', 'path'] }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 204 } }] }] }],
      clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
    })), { threads: 1 });
    try {
      const { listeners } = await s.ready();
      await fetch(`http://127.0.0.1:${listeners.web.port}/p`);
      const line = await s.waitForLog((l) => l.msg === 'access');
      const { level, time, pid, worker, ...rest } = line;
      expect([level, typeof time, typeof pid, typeof worker]).toEqual(['info', 'string', 'number', 'number']);
      expect(rest).toEqual({ msg: 'access', status: 204, path: '/p' });
    } finally {
      await s.stop();
    }
  });

  it('validate refuses an access log that cannot be written, naming the path', async () => {
    const file = writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'c', access_log: { path: '/nonexistent-dir/access.log', fields: ['time', 'bogus'] } }],
      clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }],
    }));
    const bad = await runCli(['validate', '-c', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/listeners\[0\]\.access_log\.fields\[1\]: /);
    const file2 = writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'c', access_log: { path: '/nonexistent-dir/access.log' } }],
      clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }],
    }));
    const unwritable = await runCli(['validate', '-c', file2]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/listeners\[0\]\.access_log\.path: cannot create \/nonexistent-dir\/access\.log/);
  });
});

describe('--log-format', () => {
  it('pretty prints one readable line per entry; json stays the default on a pipe', async () => {
    const config = writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200 } }] }] }],
      clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
    }));
    const s = new ShuttleProcess(config, { threads: 1, args: ['--log-format', 'pretty'] });
    try {
      const ready = await s.waitForLog((l) => /INFO.*shuttle ready/.test(l.msg));
      expect(ready.level).toBe('raw'); // not JSON
      expect(ready.msg).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: shuttle ready \{/);
      expect(ready.msg).not.toMatch(/\u001b\[/); // no colour on a pipe
    } finally {
      await s.stop();
    }
  });

  it('is pretty and coloured by default when stdout is a terminal', async () => {
    const config = writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200 } }] }] }],
      clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
    }));
    // script(1) runs the CLI on a pseudo-terminal; a validate failure is not needed: start, wait
    // for ready, and let `timeout` stop it.
    const out = await new Promise<string>((resolve) => {
      execFile('script', ['-qec', `timeout -s INT 4 ${process.execPath} ${SHUTTLE_BIN} start -c ${config} --threads 1`, '/dev/null'], { timeout: 20_000 }, (_err, stdout) => resolve(stdout));
    });
    expect(out).toMatch(/\u001b\[32mINFO\u001b\[39m.*shuttle ready/);
    expect(out).not.toMatch(/^\{"level"/m);
  });
});
