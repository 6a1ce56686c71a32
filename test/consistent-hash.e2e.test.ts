/**
 * Consistent hashing through the real CLI: a ring_hash cluster keyed by a header and a maglev one
 * keyed by a cookie keep each user on one upstream; when an upstream goes down only its users
 * move, and they come back when it returns. node:http upstreams, undici.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, type HttpUpstream } from './support/http.ts';
import { closedPort } from './support/net.ts';
import { ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('consistent hashing', () => {
  it('keeps each user on one upstream (ring_hash by header, maglev by cookie); a host that leaves moves only its users', { timeout: 60_000 }, async () => {
    const ups: HttpUpstream[] = [];
    for (const name of ['a', 'b', 'c']) ups.push(await httpUpstream(name));
    cleanup.push(...ups.map((u) => () => u.close()));
    const port = await closedPort();
    const hc = { type: 'http', path: '/', interval: '100ms', timeout: '500ms', unhealthy_threshold: 1, healthy_threshold: 1 };
    const shuttle = new ShuttleProcess(writeTempConfig({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [
        { match: { prefix: '/ring' }, cluster: 'ring', hash_policy: [{ header: { name: 'x-user' } }], retry_policy: { retry_on: ['connect-failure'], num_retries: 2 } },
        { match: { prefix: '/maglev' }, cluster: 'maglev', hash_policy: [{ cookie: { name: 'session' } }] },
      ] }] }],
      clusters: [
        { name: 'ring', lb_policy: 'ring_hash', panic_threshold: 0, hosts: ups.map((u) => u.address), health_check: hc },
        { name: 'maglev', lb_policy: 'maglev', maglev: { table_size: 1021 }, hosts: ups.map((u) => u.address) },
      ],
    }), { threads: 2 });
    cleanup.push(() => shuttle.stop());
    await shuttle.ready();
    const get = async (path: string, headers: Record<string, string>) => {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers, reset: true });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      return res.headers['x-upstream'] as string;
    };
    const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    const placement = async (path: string, key: (u: string) => Record<string, string>) => {
      const out = new Map<string, string>();
      for (const u of users) {
        const seen = new Set<string>();
        for (let i = 0; i < 4; i++) seen.add(await get(path, key(u)));
        expect(seen.size, `${u} on ${[...seen]}`).toBe(1);
        out.set(u, [...seen][0]);
      }
      return out;
    };
    await eventually(() => get('/ring', { 'x-user': 'x' }).catch(() => ''), (u) => u !== '', 10_000);
    const byHeader = await placement('/ring', (u) => ({ 'x-user': u }));
    const byCookie = await placement('/maglev', (u) => ({ cookie: `theme=dark; session=${u}` }));
    expect(new Set(byHeader.values()).size).toBeGreaterThan(1);
    expect(new Set(byCookie.values()).size).toBeGreaterThan(1);

    // b goes down: its users move, everyone else stays.
    const b = ups[1];
    const bPort = b.port;
    await b.close();
    await eventually(async () => {
      const now = new Map<string, string>();
      for (const u of users) now.set(u, await get('/ring', { 'x-user': u }));
      return now;
    }, (now) => users.every((u) => (byHeader.get(u) === 'b' ? now.get(u) !== 'b' : now.get(u) === byHeader.get(u))), 15_000);
    // b returns on its port: its users go back to it.
    const back = await httpUpstream('b', undefined, bPort);
    cleanup.push(() => back.close());
    await eventually(async () => {
      const now = new Map<string, string>();
      for (const u of users) now.set(u, await get('/ring', { 'x-user': u }));
      return now;
    }, (now) => users.every((u) => now.get(u) === byHeader.get(u)), 15_000);
  });
});
