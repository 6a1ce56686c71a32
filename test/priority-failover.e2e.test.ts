/**
 * Failover by priority (Envoy's EDS priorities, `priority` on hosts): level 0 serves; when its
 * host fails its health checks, level 1 takes the traffic with no failed request, and level 0
 * takes it back when it recovers. Real CLI, node:http upstreams, undici.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream } from './support/http.ts';
import { loop } from './support/load.ts';
import { closedPort } from './support/net.ts';
import { ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('priority failover', () => {
  it('moves traffic to level 1 while level 0 is down, and back', { timeout: 60_000 }, async () => {
    const primary = await httpUpstream('primary');
    const backup = await httpUpstream('backup');
    cleanup.push(() => primary.close(), () => backup.close());
    const port = await closedPort();
    const shuttle = new ShuttleProcess(writeTempConfig({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'svc', retry_policy: { retry_on: ['connect-failure', 'reset'], num_retries: 2 } }] }] }],
      clusters: [{ name: 'svc', panic_threshold: 0,
        hosts: [{ address: primary.address }, { address: backup.address, priority: 1 }],
        health_check: { type: 'http', path: '/', interval: '100ms', timeout: '500ms', unhealthy_threshold: 1, healthy_threshold: 1 } }],
    }), { threads: 2 });
    cleanup.push(() => shuttle.stop());
    await shuttle.ready();
    const seen: string[] = [];
    const get = async () => {
      const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      seen.push(res.headers['x-upstream'] as string);
    };
    await eventually(() => get().then(() => seen.at(-1), () => ''), (u) => u === 'primary', 10_000);
    const tail = (n: number) => seen.slice(-n);
    for (let i = 0; i < 20; i++) await get();
    expect(new Set(tail(20))).toEqual(new Set(['primary']));

    const load = loop(get);
    cleanup.push(() => load.stop());
    // Level 0 goes down: its health check fails, level 1 takes everything.
    await primary.close();
    await eventually(async () => tail(20), (t) => t.length === 20 && t.every((u) => u === 'backup'), 15_000);
    // Level 0 comes back on the same port: it takes the traffic back.
    const again = await httpUpstream('primary', undefined, primary.port);
    cleanup.push(() => again.close());
    await eventually(async () => tail(20), (t) => t.every((u) => u === 'primary'), 15_000);
    await load.stop();
    expect(load.counts.failed + load.counts.refused, load.counts.errors.join('\n')).toBe(0);
  });
});
