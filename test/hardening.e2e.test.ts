/**
 * Regression tests for the defects a hostile probe found (see SECURITY.md): each drives the real
 * CLI over real sockets and failed before its fix. Request-smuggling vectors live in
 * hostile-http.e2e.test.ts.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, rawExchange, splitResponses, type HttpUpstream } from './support/http.ts';
import { runCli, startShuttle, testConfig, writeTempConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

let shuttle: ShuttleProcess;
let port: number;
let admin: string;
let adminPort: number;
let app: HttpUpstream;
let big: HttpUpstream;

const RESPONSE_BYTES = 4096;

beforeAll(async () => {
  app = await httpUpstream('app');
  big = await httpUpstream('big', (_req, res) => res.end('x'.repeat(RESPONSE_BYTES)));
  shuttle = startShuttle(testConfig({
    listeners: [{
      name: 'web',
      address: '127.0.0.1:0',
      protocol: 'http',
      access_log: false,
      virtual_hosts: [{
        name: 'all',
        domains: ['*'],
        routes: [
          { match: { prefix: '/q', query_params: [{ name: 'b', exact: 'on' }] }, direct_response: { status: 200, body: 'flag on' } },
          { match: { prefix: '/big' }, cluster: 'big' },
          { cluster: 'app' },
        ],
      }],
    }],
    clusters: [{ name: 'app', hosts: [app.address] }, { name: 'big', hosts: [big.address] }],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  port = ready.listeners.web.port;
  admin = ready.admin;
  adminPort = Number(new URL(admin).port);
});

afterAll(async () => {
  await shuttle?.stop();
  await app?.close();
  await big?.close();
});

async function restarts(): Promise<number> {
  return ((await (await fetch(`${admin}/workers`)).json()) as { restarts: number }).restarts;
}

describe('hardening', () => {
  // A malformed escape in the query threw URIError out of routing; pipelined, it killed the worker.
  it('routes a request whose query has a malformed escape, pipelined or not, without a worker restart', async () => {
    const before = await restarts();
    const pipelined = await rawExchange(port, 'GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /q?b=%zz HTTP/1.1\r\nHost: a\r\n\r\nGET /q?%zz=1&b=on HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(splitResponses(pipelined.text).map((r) => [r.status, r.body])).toEqual([[200, 'app GET /ok'], [200, 'app GET /q?b=%zz'], [200, 'flag on']]);
    const single = await rawExchange(port, 'GET /%zz?%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(splitResponses(single.text).map((r) => r.status)).toEqual([200]);
    expect(await restarts()).toBe(before);
  });

  // 100,000 pipelined GETs from a client that never read: every one was forwarded and the
  // responses piled up in the proxy (+92 MB).
  it('stops taking pipelined requests from a client that does not read its responses', async () => {
    const total = 20_000;
    const before = big.requests.length;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.pause(); // never read
    const one = 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n';
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    // Written in slices; the proxy stops reading, so the writes end up waiting in our buffer.
    for (let i = 0; i < total; i += 500) s.write(one.repeat(500));
    // Wait until the upstream count stops moving, then compare with what unread responses can fill:
    // the kernel's socket buffers on both sides (a few MB) plus the proxy's bounded buffers.
    let last = -1;
    const seen = await eventually(async () => {
      const n = big.requests.length - before;
      await new Promise((r) => setTimeout(r, 300));
      const stable = n === last && n > 0;
      last = n;
      return stable ? n : -1;
    }, (n) => n > 0, 20_000);
    s.destroy();
    // 20,000 × 4 KB = 80 MB of responses if nothing stopped it.
    expect(seen).toBeLessThan(total / 2);
  });

  describe('admin API against browsers', () => {
    it('refuses a cross-origin POST that looks like a form and keeps the worker', async () => {
      const before = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number; workers: { state: string }[] };
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: adminPort, path: '/workers/0/terminate', method: 'POST', headers: { 'content-type': 'text/plain', origin: 'http://evil.example', host: `127.0.0.1:${adminPort}` } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end('x');
      });
      expect(status).toBe(403);
      const after = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number; workers: { state: string }[] };
      expect(after.restarts).toBe(before.restarts);
      expect(after.workers.filter((w) => w.state === 'ready')).toHaveLength(2);
    });

    const adminRequest = (path: string, headers: Record<string, string>, method = 'GET') => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: adminPort, path, method, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });

    it('refuses a foreign Host (DNS rebinding), a same-site page of another port, and form content types', async () => {
      expect((await adminRequest('/config_dump', { host: `evil.example:${adminPort}` })).status).toBe(403);
      expect((await adminRequest('/config_dump', { host: `127.0.0.1:${adminPort}` })).status).toBe(200);
      expect((await adminRequest('/config_dump', { host: `localhost:${adminPort}` })).status).toBe(200);
      expect((await adminRequest('/config_dump', { host: `127.0.0.1:${adminPort}`, origin: 'http://127.0.0.1:8000' })).status).toBe(403);
      expect((await adminRequest('/config_dump', { host: `127.0.0.1:${adminPort}`, origin: `http://127.0.0.1:${adminPort}` })).status).toBe(200);
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
        expect((await adminRequest('/workers/99/terminate', { host: `127.0.0.1:${adminPort}`, 'content-type': type }, 'POST')).status).toBe(403);
      }
      // curl's plain POST (no body, no content type) and JSON pass the guard (404: no such worker).
      expect((await adminRequest('/workers/99/terminate', { host: `127.0.0.1:${adminPort}` }, 'POST')).status).toBe(404);
      expect((await adminRequest('/workers/99/terminate', { host: `127.0.0.1:${adminPort}`, 'content-type': 'application/json' }, 'POST')).status).toBe(404);
    });

    it('refuses to bind the admin API to a non-loopback address unless allow_remote says so', async () => {
      const config = testConfig({ admin: { address: '0.0.0.0:0' }, listeners: [{ name: 't', address: '127.0.0.1:0', cluster: 'c' }], clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }] });
      const refused = await runCli(['validate', '-c', writeTempConfig(config)]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/admin\.address: 0\.0\.0\.0 is not a loopback address.*allow_remote: true/);
      const allowed = await runCli(['validate', '-c', writeTempConfig({ ...config, admin: { address: '0.0.0.0:0', allow_remote: true } })]);
      expect(allowed.code).toBe(0);
    });
  });

  // A connection accepted while a worker was being killed was handed to the dying worker and reset.
  it('hands no connection to a worker that is being killed', async () => {
    const fresh = (path: string) => new Promise<number>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
    const before = await restarts();
    const statuses: number[] = [];
    for (let round = 0; round < 3; round++) {
      const slot = round % 2;
      // The kill is acknowledged; the worker is still exiting when this burst of new connections
      // arrives (its own in-flight requests may be lost, as with a crash; new ones must not be).
      expect((await fetch(`${admin}/workers/${slot}/terminate`, { method: 'POST' })).status).toBe(202);
      const burst = Array.from({ length: 40 }, (_, i) => fresh(`/burst-${round}-${i}`));
      statuses.push(...(await Promise.all(burst)));
      await eventually(async () => ((await (await fetch(`${admin}/workers`)).json()) as { workers: { state: string }[] }).workers.filter((w) => w.state === 'ready').length, (n) => n === 2, 10_000);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await restarts()).toBe(before + 3);
  });
});
