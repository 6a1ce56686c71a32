/**
 * The shared plane at work through the real CLI: stats read by the admin without asking workers,
 * active health checks, outlier ejection, panic mode, and the admin endpoints.
 */
import http from 'node:http';
import net from 'node:net';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { redact } from '../src/admin/routes.ts';
import { Client, closedPort, echoServer, namedServer, type Upstream } from './support/net.ts';
import { eventually } from './support/wait.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function track<T extends { close(): Promise<void> }>(u: T): T {
  cleanup.push(() => u.close());
  return u;
}

async function proxy(clusters: object[], listenerCluster = 'backend') {
  const shuttle = startShuttle(testConfig({
    listeners: [{ name: 'in', address: '127.0.0.1:0', cluster: listenerCluster }],
    clusters,
  }), { threads: 2 });
  cleanup.push(() => shuttle.stop());
  const { admin, listeners } = await shuttle.ready();
  return { shuttle, admin, port: listeners.in.port };
}

async function connect(port: number): Promise<Client> {
  const c = await Client.connect(port);
  cleanup.push(() => void c.socket.destroy());
  return c;
}

/** The upstream's name, as a named server greets. */
async function greeting(port: number): Promise<string> {
  const c = await connect(port);
  const name = (await c.until(2)).toString().split('\n')[0];
  c.socket.end();
  await c.closed;
  return name;
}

type ClusterView = { name: string; panic: boolean; hosts: { address: string; health: string; flags: string[]; active_connections: number; connections_total: number; connect_failures: number }[] };
async function clusters(admin: string): Promise<ClusterView[]> {
  return (await (await fetch(`${admin}/clusters`)).json()) as ClusterView[];
}

function metricValue(families: ReturnType<typeof parsePrometheus>, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample) throw new Error(`no sample of ${name} with ${JSON.stringify(labels)}`);
  return Number(sample.value);
}

describe('shared plane', () => {
  it('/metrics is Prometheus text whose counters match the traffic sent across 2 workers', async () => {
    const echo = track(await echoServer());
    const { admin, port } = await proxy([{ name: 'backend', hosts: [echo.address] }]);
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(port)));
    let sent = 0;
    for (const [i, c] of clients.entries()) {
      const msg = 'm'.repeat(100 + i * 37);
      expect(await c.echo(msg)).toBe(msg);
      sent += msg.length;
    }
    // While they are open, active gauges count them; both workers hold some.
    let families = parsePrometheus(await (await fetch(`${admin}/metrics`)).text());
    expect(metricValue(families, 'shuttle_listener_downstream_cx_active', { listener: 'in' })).toBe(10);
    expect(metricValue(families, 'shuttle_worker_connections_active', { worker: '0' })).toBe(5);
    expect(metricValue(families, 'shuttle_worker_connections_active', { worker: '1' })).toBe(5);
    for (const c of clients) c.socket.end();
    await Promise.all(clients.map((c) => c.closed));

    const text = await eventually(
      async () => (await fetch(`${admin}/metrics`)).text(),
      (t) => /shuttle_listener_downstream_cx_active\{listener="in"\} 0/.test(t),
    );
    families = parsePrometheus(text);
    const host = { cluster: 'backend', host: echo.address };
    expect(families.find((f) => f.name === 'shuttle_listener_downstream_cx_total')?.type).toBe('COUNTER');
    expect(metricValue(families, 'shuttle_listener_downstream_cx_total', { listener: 'in' })).toBe(10);
    expect(metricValue(families, 'shuttle_listener_downstream_cx_rx_bytes_total', { listener: 'in' })).toBe(sent);
    expect(metricValue(families, 'shuttle_listener_downstream_cx_tx_bytes_total', { listener: 'in' })).toBe(sent);
    expect(metricValue(families, 'shuttle_host_upstream_cx_total', host)).toBe(10);
    expect(metricValue(families, 'shuttle_host_upstream_cx_active', host)).toBe(0);
    expect(metricValue(families, 'shuttle_host_upstream_cx_tx_bytes_total', host)).toBe(sent);
    expect(metricValue(families, 'shuttle_host_upstream_cx_connect_fail_total', host)).toBe(0);
    expect(metricValue(families, 'shuttle_host_healthy', host)).toBe(1);
    expect(metricValue(families, 'shuttle_config_generation')).toBe(1);
    expect(metricValue(families, 'shuttle_ring_dropped_events_total')).toBe(0);
    for (const w of ['0', '1']) {
      const elu = metricValue(families, 'shuttle_worker_event_loop_utilization', { worker: w });
      expect(elu).toBeGreaterThanOrEqual(0);
      expect(elu).toBeLessThanOrEqual(1);
      // Each worker is its own V8 isolate: its heap is reported beside the main thread's.
      expect(metricValue(families, 'shuttle_worker_heap_used_bytes', { worker: w })).toBeGreaterThan(1e6);
    }
    expect(metricValue(families, 'shuttle_process_resident_memory_bytes')).toBeGreaterThan(1e6);
    // The same text under Envoy's path.
    expect(await (await fetch(`${admin}/stats/prometheus`)).text()).toContain('shuttle_listener_downstream_cx_total{listener="in"} 10');
  });

  it('marks a downed host unhealthy within interval × threshold, moves traffic off it, and back when it returns', async () => {
    const a = await namedServer('a');
    const b = track(await namedServer('b'));
    const interval = 200;
    const threshold = 2;
    const { shuttle, admin, port } = await proxy([{
      name: 'backend',
      hosts: [a.address, b.address],
      health_check: { type: 'tcp', interval: `${interval}ms`, timeout: '200ms', unhealthy_threshold: threshold, healthy_threshold: 2 },
    }]);
    expect((await clusters(admin))[0].hosts.map((h) => h.health)).toEqual(['healthy', 'healthy']);
    // Four connections: whichever workers take them, each worker's round robin alternates.
    const first = new Set<string>();
    for (let i = 0; i < 4; i++) first.add(await greeting(port));
    expect(first).toEqual(new Set(['a', 'b']));

    const downAt = Date.now();
    await a.close();
    await eventually(() => clusters(admin), (c) => c[0].hosts[0].health === 'unhealthy', 5_000);
    const detectedAfter = Date.now() - downAt;
    // threshold probes, each up to interval × 1.1 apart (jitter), plus one probe's timeout; the
    // slack is for a busy machine, where timers fire late (a bound, not a speed measurement).
    expect(detectedAfter).toBeLessThan(interval * 1.1 * threshold + 200 + 3_000);
    const line = await shuttle.waitForLog((l) => l.msg === 'host health changed' && l.host === a.address);
    expect(line).toMatchObject({ health: 'unhealthy', flags: ['failed_active_health_check'] });

    for (let i = 0; i < 6; i++) expect(await greeting(port)).toBe('b');

    const back = track(await namedServer('a', a.port));
    await eventually(() => clusters(admin), (c) => c[0].hosts[0].health === 'healthy', 5_000);
    const names = new Set<string>();
    for (let i = 0; i < 4; i++) names.add(await greeting(port));
    expect(names).toEqual(new Set(['a', 'b']));
    expect(back.connections).toBeGreaterThan(0);
  });

  it('HTTP health checks compare the status with expected_statuses', async () => {
    let status = 200;
    const seenPaths: string[] = [];
    const server = http.createServer((req, res) => {
      seenPaths.push(req.url ?? '');
      res.writeHead(req.url === '/healthz' ? status : 404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
    const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { admin } = await proxy([{
      name: 'backend',
      hosts: [addr],
      health_check: { type: 'http', path: '/healthz', expected_statuses: [200, 204], interval: '100ms', timeout: '500ms', unhealthy_threshold: 1, healthy_threshold: 1 },
    }]);
    expect((await clusters(admin))[0].hosts[0].health).toBe('healthy');
    status = 503;
    await eventually(() => clusters(admin), (c) => c[0].hosts[0].health === 'unhealthy');
    status = 204;
    await eventually(() => clusters(admin), (c) => c[0].hosts[0].health === 'healthy');
    expect(new Set(seenPaths)).toEqual(new Set(['/healthz']));
  });

  it('probes once per process, not once per worker', async () => {
    let probes = 0;
    const server = net.createServer((s) => {
      probes++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { shuttle } = await proxy([{ name: 'backend', hosts: [addr], health_check: { interval: '10s', timeout: '1s' } }]);
    await shuttle.ready();
    // One first-round probe for one host, though 2 workers run.
    expect(probes).toBe(1);
  });

  it('ejects a host after consecutive connect failures reported by workers, then lets it back', async () => {
    const dead = await closedPort();
    const live = track(await namedServer('live'));
    const deadAddr = `127.0.0.1:${dead}`;
    const { shuttle, admin, port } = await proxy([{
      name: 'backend',
      hosts: [deadAddr, live.address],
      outlier_detection: { consecutive_failures: 3, base_ejection_time: '1500ms', max_ejection_percent: 50 },
    }]);
    // Connections keep working throughout (the proxy fails over), while failures accumulate.
    for (let i = 0; i < 8; i++) expect(await greeting(port)).toBe('live');
    const view = await eventually(() => clusters(admin), (c) => c[0].hosts[0].flags.includes('ejected'));
    expect(view[0].hosts[0]).toMatchObject({ health: 'unhealthy', connect_failures: 3 });
    const ejected = await shuttle.waitForLog((l) => l.msg === 'host health changed' && l.flags?.includes('ejected'));
    expect(ejected.reason).toMatch(/3 consecutive connect failures/);
    // While ejected, no connection tries the dead host first.
    const accessBefore = shuttle.logs.filter((l) => l.msg === 'access').length;
    for (let i = 0; i < 4; i++) expect(await greeting(port)).toBe('live');
    await eventually(async () => shuttle.logs.filter((l) => l.msg === 'access').length, (n) => n >= accessBefore + 4);
    const recent = shuttle.logs.filter((l) => l.msg === 'access').slice(accessBefore);
    expect(recent.every((l) => l.attempts === 1)).toBe(true);
    // Then the ejection ends by itself.
    await eventually(() => clusters(admin), (c) => c[0].hosts[0].health === 'healthy', 5_000);
  });

  it('panics when too few hosts are healthy and balances over all of them', async () => {
    // Both hosts accept TCP (traffic would work) but fail their HTTP health check.
    const a = track(await echoServer());
    const b = track(await echoServer());
    const { shuttle, admin, port } = await proxy([{
      name: 'backend',
      hosts: [a.address, b.address],
      health_check: { type: 'http', path: '/health', interval: '5s', timeout: '300ms' },
    }]);
    const view = await clusters(admin);
    expect(view[0].panic).toBe(true);
    expect(view[0].hosts.map((h) => h.health)).toEqual(['unhealthy', 'unhealthy']);
    await shuttle.waitForLog((l) => l.msg.startsWith('cluster in panic'));
    const c = await connect(port);
    expect(await c.echo('still served')).toBe('still served');
  });

  it('/config_dump shows the running config with its generation and hash; /ready and /live answer', async () => {
    const echo = track(await echoServer());
    const { admin } = await proxy([{ name: 'backend', hosts: [echo.address] }]);
    const dump = (await (await fetch(`${admin}/config_dump`)).json()) as { generation: number; hash: string; config: { clusters: { name: string }[] } };
    expect(dump.generation).toBe(1);
    expect(dump.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(dump.config.clusters[0].name).toBe('backend');
    expect((await fetch(`${admin}/ready`)).status).toBe(200);
    expect((await fetch(`${admin}/live`)).status).toBe(200);
    expect((await fetch(`${admin}/nope`)).status).toBe(404);
    expect((await fetch(`${admin}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('redacts secret-looking values in a config dump', () => {
    expect(redact({ tls: { private_key: 'k', cert: 'c' }, auth: [{ token: 't', user: 'u' }], password: 'p' })).toEqual({
      tls: { private_key: '[redacted]', cert: 'c' },
      auth: [{ token: '[redacted]', user: 'u' }],
      password: '[redacted]',
    });
  });
});
