/**
 * The admin endpoints Envoy users reach for, through the real CLI: /help, /server_info, /logging
 * (levels changed at runtime in the main thread and the workers), /healthcheck/fail and /ok,
 * /drain_listeners, /config_dump in the config's own shape (fed back to `shuttle validate`), and
 * snake_case JSON everywhere.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { makePki } from './support/certs.ts';
import { httpUpstream } from './support/http.ts';
import { Client, closedPort, echoServer } from './support/net.ts';
import { runCli, ShuttleProcess, startShuttle, testConfig, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

const post = (url: string) => json(url, { method: 'POST' });

/** One HTTP/1.1 request on a fresh connection (both workers get some). */
function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

async function httpProxy() {
  const up = await httpUpstream('up');
  cleanup.push(() => up.close());
  const shuttle = startShuttle(testConfig({
    listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }] }],
    clusters: [{ name: 'up', hosts: [up.address] }],
  }), { threads: 2 });
  cleanup.push(() => shuttle.stop());
  const { admin, listeners } = await shuttle.ready();
  return { shuttle, admin, port: listeners.web.port };
}

/** Every key of a JSON value (not inside `skip` subtrees). */
function keysOf(value: unknown, skip = new Set<string>()): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => keysOf(v, skip));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...(skip.has(k) ? [] : keysOf(v, skip))]);
  return [];
}

describe('admin endpoints', () => {
  it('/help lists every endpoint with what it does; every JSON answer uses snake_case keys', async () => {
    const { admin } = await httpProxy();
    const help = await (await fetch(`${admin}/help`)).text();
    for (const line of ['GET /server_info', 'GET /logging', 'POST /logging', 'POST /healthcheck/fail', 'POST /healthcheck/ok', 'POST /drain_listeners', 'GET /config_dump', 'GET /metrics', 'GET /clusters', 'GET /workers', 'GET /dashboard']) {
      expect(help).toMatch(new RegExp(`^  ${line.replace(/\//g, '\\/')} +\\S.*$`, 'm'));
    }
    const notFound = await json(`${admin}/nope`);
    expect(notFound.status).toBe(404);
    expect(notFound.body.endpoints).toContain('GET /server_info');
    for (const path of ['/server_info', '/workers', '/clusters', '/listeners', '/logging', '/config_dump', '/dashboard/data']) {
      const { status, body } = await json(`${admin}${path}`);
      expect(status, path).toBe(200);
      // (Inside the config, keys are the config's own: user-chosen names may stand there.)
      for (const key of keysOf(body, new Set(['config', 'loggers']))) expect(key, `${path}: ${key}`).toMatch(/^[a-z][a-z0-9_]*$|^\d+$/);
    }
  });

  it('/server_info: version, state, uptime, command line, hot-restart and config generations', async () => {
    const file = writeTempConfig(testConfig({
      listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200 } }] }] }],
      clusters: [{ name: 'none', hosts: ['127.0.0.1:1'] }],
    }));
    const pidFile = join(file, '..', 'shuttle.pid');
    const shuttle = new ShuttleProcess(file, { threads: 2, args: ['--pid-file', pidFile] });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const { body: info } = await json(`${admin}/server_info`);
    expect(info).toMatchObject({
      version: pkg.version, node_version: process.versions.node, pid: shuttle.pid, state: 'live', health_check_failed: false,
      hot_restart_generation: 0, upgraded_from_pid: null, config_file: file, config_generation: 1, threads: 2, balance: 'handoff',
      last_reload: { attempts: 0, failures: 0, last_ok: null }, last_upgrade: null,
    });
    expect(info.config_hash).toMatch(/^[0-9a-f]{16}$/);
    expect(info.uptime_seconds).toBeGreaterThanOrEqual(0);
    expect(info.uptime_all_epochs_seconds).toBeGreaterThanOrEqual(info.uptime_seconds);
    expect(Date.parse(info.started_at)).toBeLessThanOrEqual(Date.now());
    expect(info.command_line).toEqual(expect.arrayContaining(['start', '-c', file, '--threads', '2', '--pid-file', pidFile]));
    // A reload moves the config generation and records its outcome.
    const reloaded = await runCli(['reload', '-p', pidFile]);
    expect(reloaded.code, reloaded.stderr).toBe(0);
    const { body: after } = await json(`${admin}/server_info`);
    expect(after).toMatchObject({ config_generation: 2, last_reload: { attempts: 1, failures: 0, last_ok: true, last_error: null } });
    expect(after.uptime_seconds).toBeGreaterThanOrEqual(info.uptime_seconds);
  });

  it('/logging shows and changes log levels at runtime, in the workers and the main thread, checked and atomic', async () => {
    const { shuttle, admin, port } = await httpProxy();
    expect((await json(`${admin}/logging`)).body).toMatchObject({ loggers: { main: 'info', workers: 'info' }, levels: expect.arrayContaining(['debug', 'info', 'warn']) });
    const accessFor = (path: string) => shuttle.logs.filter((l) => l.msg === 'access' && l.path === path).length;
    // Workers at warn write no access line (those are info).
    const quiet = await post(`${admin}/logging?workers=warn`);
    expect(quiet).toMatchObject({ status: 200, body: { loggers: { main: 'info', workers: 'warn' } } });
    for (let i = 0; i < 6; i++) expect(await get(port, '/quiet')).toBe(200);
    expect((await post(`${admin}/logging?workers=info`)).body.loggers.workers).toBe('info');
    // Markers on fresh connections reach both workers; each worker writes its lines in order, so
    // once every marker is logged, any line of a /quiet request would be too.
    for (let i = 0; i < 6; i++) expect(await get(port, '/marker')).toBe(200);
    await eventually(async () => accessFor('/marker'), (n) => n === 6, 10_000);
    expect(new Set(shuttle.logs.filter((l) => l.msg === 'access' && l.path === '/marker').map((l) => l.worker)).size).toBe(2);
    expect(accessFor('/quiet')).toBe(0);

    // Bad names or levels change nothing, and say what is valid.
    const badLevel = await post(`${admin}/logging?level=loud`);
    expect(badLevel.status).toBe(400);
    expect(badLevel.body.error).toMatch(/unknown level "loud" \(levels: trace, debug, info/);
    const badLogger = await post(`${admin}/logging?workers=debug&nosuch=debug`);
    expect(badLogger.status).toBe(400);
    expect(badLogger.body.error).toMatch(/unknown logger "nosuch" \(loggers: main, workers/);
    expect(badLogger.body.loggers).toEqual({ main: 'info', workers: 'info' });
    expect((await post(`${admin}/logging`)).status).toBe(400);
    // GET never changes anything; a browser-style form POST is refused.
    await fetch(`${admin}/logging?level=debug`);
    expect((await json(`${admin}/logging`)).body.loggers).toEqual({ main: 'info', workers: 'info' });
    expect((await fetch(`${admin}/logging?level=debug`, { method: 'POST', headers: { 'content-type': 'text/plain' } })).status).toBe(403);

    // level= sets every logger; a worker started later (a replacement) starts at that level.
    expect((await post(`${admin}/logging?level=debug`)).body.loggers).toEqual({ main: 'debug', workers: 'debug' });
    const workers = (await json(`${admin}/workers`)).body.workers as { slot: number; worker_id: number }[];
    expect((await fetch(`${admin}/workers/${workers[0].slot}/terminate`, { method: 'POST' })).status).toBe(202);
    const debugLine = await shuttle.waitForLog((l) => l.level === 'debug' && l.msg === 'worker ready' && l.worker !== workers[0].worker_id && l.slot === workers[0].slot, 10_000, 'the replacement worker\'s debug line');
    expect(debugLine.worker).toBeGreaterThan(2);
    // main at warn: its info lines stop, its warnings go on.
    await post(`${admin}/logging?main=warn`);
    await post(`${admin}/healthcheck/fail`);
    await post(`${admin}/healthcheck/ok`);
    await shuttle.waitForLog((l) => l.msg.startsWith('health check failed by the admin'), 5_000);
    expect(shuttle.logs.some((l) => l.msg.startsWith('health check restored'))).toBe(false);
  });

  it('/healthcheck/fail makes /ready answer 503 while traffic is still served; /healthcheck/ok undoes it', async () => {
    const { admin, port } = await httpProxy();
    expect((await fetch(`${admin}/ready`)).status).toBe(200);
    expect(await post(`${admin}/healthcheck/fail`)).toEqual({ status: 200, body: { health_check_failed: true } });
    const ready = await fetch(`${admin}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toBe('HEALTHCHECK_FAILED\n');
    expect(await get(port, '/still')).toBe(200);
    expect((await json(`${admin}/server_info`)).body).toMatchObject({ state: 'draining', health_check_failed: true });
    expect((await fetch(`${admin}/healthcheck/fail`)).status).toBe(405); // GET changes nothing
    expect(await post(`${admin}/healthcheck/ok`)).toEqual({ status: 200, body: { health_check_failed: false } });
    expect((await fetch(`${admin}/ready`)).status).toBe(200);
    expect((await json(`${admin}/server_info`)).body.state).toBe('live');
  });

  it('/drain_listeners stops accepting, lets open connections finish, keeps the admin up until SIGTERM', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.close());
    const shuttle = startShuttle(testConfig({
      listeners: [{ name: 'tcp', address: '127.0.0.1:0', cluster: 'echo' }],
      clusters: [{ name: 'echo', hosts: [echo.address] }],
      drain_timeout: '60s',
    }), { threads: 2 });
    cleanup.push(() => shuttle.stop());
    const { admin, listeners } = await shuttle.ready();
    const open = await Client.connect(listeners.tcp.port);
    cleanup.push(() => void open.socket.destroy());
    expect(await open.echo('before')).toBe('before');

    const drained = await post(`${admin}/drain_listeners`);
    expect(drained).toMatchObject({ status: 202, body: { state: 'draining', already_draining: false, drain_timeout: '1m' } });
    expect((await post(`${admin}/drain_listeners`)).body.already_draining).toBe(true);
    // No new connection is taken...
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(listeners.tcp.port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve('connected'); });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    // ...the open one still works, and the admin answers.
    expect(await open.echo('during')).toBe('during');
    const ready = await fetch(`${admin}/ready`);
    expect([ready.status, await ready.text()]).toEqual([503, 'DRAINING\n']);
    expect((await json(`${admin}/server_info`)).body.state).toBe('draining');
    // Once the client is done, the connections are all closed; the process stays until told.
    open.socket.end();
    await shuttle.waitForLog((l) => l.msg === 'listeners drained: every connection is closed', 10_000);
    expect((await fetch(`${admin}/live`)).status).toBe(200);
    expect(shuttle.exitCode).toBeUndefined();
    shuttle.signal('SIGTERM');
    expect(await shuttle.waitForExit(10_000)).toBe(0);
  });

  it('/config_dump is the config in its own shape (durations with units, absolute file paths): shuttle validate takes it back, meaning the same', async () => {
    const pki = makePki();
    pki.issue('server', { cn: 'localhost', sans: 'DNS:localhost' });
    const backend = await closedPort();
    // Relative TLS paths: resolved against the config file's folder.
    const yaml = `
version: 1
admin: { address: 127.0.0.1:0 }
drain_timeout: 5s
upgrade_timeout: 90s
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    idle_timeout: 90s
    http: { request_headers_timeout: 2500ms, stream_idle_timeout: 1m }
    tls: { certificates: [{ cert: server.pem, key: server.key }], handshake_timeout: 3s }
    http_filters:
      - name: fault
        config: { delay: { fixed_delay: 10ms, percentage: 0 } }
      - name: local_ratelimit
        config: { token_bucket: { max_tokens: 100, fill_interval: 1s }, descriptor: { type: header, name: x-user } }
      - name: rbac
        config:
          policies:
            all: { permissions: [{ or_rules: [{ path: { prefix: / } }, { methods: [GET] }] }], principals: [{ not_id: { source_ip: 10.0.0.0/8 } }] }
      - name: jwt_authn
        config: { providers: { p: { issuer: x, local_jwks: { inline_string: '{"keys":[]}' }, clock_skew: 30s } }, rules: [{ match: { prefix: /private }, requires: p }] }
      - name: cors
        config: { allow_origin: [{ suffix: .example.com }], max_age: 1h }
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - name: api
            match: { prefix: / }
            cluster: backend
            timeout: 2500ms
            retry_policy: { retry_on: [5xx], per_try_timeout: 500ms }
            per_filter_config: { fault: { disabled: true }, cors: { allow_origin: [{ exact: https://a.example.com }] } }
  - name: rpc
    address: 127.0.0.1:0
    protocol: bolt
    rpc: { routes: [{ name: svc, match: { service: x }, cluster: backend, timeout: 3s }] }
clusters:
  - name: backend
    connect_timeout: 250ms
    hosts: [127.0.0.1:${backend}, { address: "[::1]:${backend}", weight: 3 }]
    health_check: { type: tcp, interval: 1h, timeout: 1s }
    outlier_detection: { base_ejection_time: 10s, success_rate: { interval: 5s } }
    connection_pool: { idle_timeout: 2m }
    circuit_breakers: { thresholds: [{ max_requests: 10 }] }
    tls: { ca: ca.pem }
`;
    const file = join(pki.dir, 'shuttle.yaml');
    writeFileSync(file, yaml);
    const shuttle = new ShuttleProcess(file, { threads: 1 });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();

    const { body: dump } = await json(`${admin}/config_dump`);
    expect(dump).toMatchObject({ generation: 1, hash: expect.stringMatching(/^[0-9a-f]{16}$/), config_file: file, reload: { attempts: 0, failures: 0 } });
    const c = dump.config;
    expect(c.drain_timeout).toBe('5s');
    expect(c.upgrade_timeout).toBe('90s');
    expect(c.listeners[0]).toMatchObject({ address: '127.0.0.1:0', idle_timeout: '90s', http: { request_headers_timeout: '2500ms', stream_idle_timeout: '1m' } });
    expect(c.listeners[0].tls).toMatchObject({ certificates: [{ cert: join(pki.dir, 'server.pem'), key: join(pki.dir, 'server.key') }], handshake_timeout: '3s' });
    expect(c.listeners[0].http_filters[1].config.token_bucket.fill_interval).toBe('1s');
    expect(c.listeners[0].http_filters[3].config.providers.p.clock_skew).toBe('30s');
    expect(c.listeners[0].http_filters[4].config.max_age).toBe('1h');
    expect(c.listeners[0].virtual_hosts[0].routes[0]).toMatchObject({ timeout: '2500ms', retry_policy: { per_try_timeout: '500ms' }, per_filter_config: { fault: { disabled: true } } });
    expect(c.clusters[0]).toMatchObject({ connect_timeout: '250ms', hosts: [`127.0.0.1:${backend}`, { address: `[::1]:${backend}`, weight: 3 }], tls: { ca: join(pki.dir, 'ca.pem') } });
    expect(c.clusters[0].health_check).toMatchObject({ interval: '1h', timeout: '1s' });
    expect(c.clusters[0].outlier_detection).toMatchObject({ base_ejection_time: '10s', max_ejection_time: '5m', success_rate: { interval: '5s' } });
    expect(JSON.stringify(c)).not.toMatch(/"(timeout|interval|drain_timeout|idle_timeout|connect_timeout)":\d/);

    // Saved elsewhere (JSON and YAML), it validates, and means what the running config means.
    const elsewhere = writeTempConfig(c);
    const validated = await runCli(['validate', '-c', elsewhere]);
    expect(validated.code, validated.stderr).toBe(0);
    expect(validated.stdout).toContain('valid (2 listeners, 1 clusters)');
    const asYaml = await (await fetch(`${admin}/config_dump?format=yaml`)).text();
    expect(asYaml).toMatch(/^# Shuttle config generation 1 \(hash [0-9a-f]{16}\)/);
    const yamlFile = writeTempConfig(asYaml, 'yaml');
    const validatedYaml = await runCli(['validate', '-c', yamlFile]);
    expect(validatedYaml.code, validatedYaml.stderr).toBe(0);
    const original = parseConfig(yaml, file);
    const fromDump = parseConfig(asYaml, yamlFile);
    const withAbsolutePaths = JSON.parse(JSON.stringify(original).replaceAll('"server.pem"', JSON.stringify(join(pki.dir, 'server.pem'))).replaceAll('"server.key"', JSON.stringify(join(pki.dir, 'server.key'))).replaceAll('"ca.pem"', JSON.stringify(join(pki.dir, 'ca.pem'))));
    expect(JSON.parse(JSON.stringify(fromDump))).toEqual(withAbsolutePaths);
    expect(YAML.parse(asYaml)).toEqual(c);
  });
});
