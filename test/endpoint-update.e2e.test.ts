/**
 * Endpoint updates (a reload or an xDS generation that changes only the hosts of clusters) take
 * the fast path: workers swap those clusters in place, listeners and routers stay (see
 * hostsOnlyChange, WorkerPool.publishHosts). Real CLI, node:http upstreams, undici under load.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream } from './support/http.ts';
import { loop } from './support/load.ts';
import { closedPort } from './support/net.ts';
import { runCli, ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('endpoint updates', () => {
  it('a reload that changes only hosts swaps them in place under load: traffic moves and nothing fails', { timeout: 60_000 }, async () => {
    const [a, b, c] = await Promise.all([httpUpstream('a'), httpUpstream('b'), httpUpstream('c')]);
    cleanup.push(() => a.close(), () => b.close(), () => c.close());
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-endpoints-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const config = (hosts: string[], routePrefix = '/') => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: routePrefix }, cluster: 'svc' }] }] }],
      clusters: [
        { name: 'svc', hosts, health_check: { path: '/health', interval: '200ms', timeout: '1s' } },
        { name: 'other', hosts: [c.address] },
      ],
    });
    writeFileSync(configFile, JSON.stringify(config([a.address])));
    const shuttle = new ShuttleProcess(configFile, { threads: 2, args: ['--pid-file', pidFile] });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const reload = async (cfg: object, generation: number) => {
      writeFileSync(configFile, JSON.stringify(cfg));
      const r = await runCli(['reload', '--pid-file', pidFile], { timeoutMs: 30_000 });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      return shuttle.waitForLog((l) => l.msg === 'config reloaded' && l.generation === generation, 20_000);
    };

    const agent = new Agent({ keepAliveTimeout: 30_000, connections: 2 });
    cleanup.push(() => agent.close());
    const seen = new Set<string>();
    const get = async () => {
      const res = await request(`http://127.0.0.1:${port}/x`, { dispatcher: agent });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body}`);
      seen.add(res.headers['x-upstream'] as string);
      return res.headers['x-upstream'] as string;
    };
    await eventually(() => get().catch(() => ''), (u) => u === 'a', 10_000);
    const load = loop(async () => void (await get()));
    cleanup.push(() => load.stop());
    await eventually(async () => load.counts.ok, (n) => n >= 20, 10_000);

    // Hosts only: a → b. The fast path, and traffic moves to b.
    const moved = await reload(config([b.address]), 2);
    expect(moved.hosts_only).toBe(true);
    expect(moved.diff.clusters.changed).toEqual(['svc']);
    await eventually(() => get(), (u) => u === 'b', 10_000);
    const okAtB = load.counts.ok;
    await eventually(async () => load.counts.ok, (n) => n >= okAtB + 20, 10_000);
    // Hosts only again, and a host that comes back: a and b both serve.
    expect((await reload(config([a.address, b.address]), 3)).hosts_only).toBe(true);
    seen.clear();
    await eventually(async () => { await get(); return seen; }, (s) => s.has('a') && s.has('b'), 10_000);
    // The admin sees the new hosts, health-checked.
    const clusters = await (await fetch(`${admin}/clusters?format=json`)).json() as any;
    const svc = (clusters.clusters ?? clusters).find((x: any) => x.name === 'svc');
    expect(svc.hosts.map((h: any) => h.address).sort()).toEqual([a.address, b.address].sort());

    // A route change is not hosts only: the whole generation path.
    expect((await reload(config([a.address, b.address], '/x'), 4)).hosts_only).toBe(false);
    await load.stop();
    expect(load.counts.failed + load.counts.refused, load.counts.errors.join('\n')).toBe(0);
    expect(load.counts.ok).toBeGreaterThan(60);
  });
});
