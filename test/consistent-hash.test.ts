/** Consistent-hash balancers (src/cluster/consistent-hash.ts) and the request hash (hash_policy). */
import { describe, expect, it } from 'vitest';
import { hashKey, Maglev, RingHash } from '../src/cluster/consistent-hash.ts';
import { Host } from '../src/cluster/host.ts';
import { HeaderMap } from '../src/stream/header-map.ts';
import { cookie, requestHash } from '../src/proxy/http/hash-policy.ts';
import { HealthFlag, HealthTable } from '../src/shared/health-table.ts';

const health = HealthTable.create(64, 1);
const hosts = (weights: number[], first = 0) => weights.map((weight, i) => new Host({ host: '10.0.0.1', port: 8000 + first + i, weight }, first + i, 0, health));
const keys = Array.from({ length: 20_000 }, (_, i) => hashKey(`user-${i}`));
const ring = (hs: Host[]) => new RingHash(hs, { minimumRingSize: 1024, maximumRingSize: 8_388_608 });
const maglev = (hs: Host[]) => new Maglev(hs, 65_537);

describe.each([['ring hash', ring], ['Maglev', maglev]] as const)('%s', (_, make) => {
  it('sends a key to the same host every time, and spreads keys by weight', () => {
    for (let i = 0; i < 64; i++) health.clear(i, HealthFlag.FAILED_ACTIVE_HC | HealthFlag.EJECTED);
    const hs = hosts([1, 1, 2]);
    const lb = make(hs);
    const counts = new Map<Host, number>();
    for (const k of keys) {
      const h = lb.choose(undefined, k)!;
      expect(lb.choose(undefined, k)).toBe(h);
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    const share = (h: Host) => (counts.get(h) ?? 0) / keys.length;
    expect(share(hs[0])).toBeGreaterThan(0.18);
    expect(share(hs[0])).toBeLessThan(0.32);
    expect(share(hs[2])).toBeGreaterThan(0.4);
    expect(share(hs[2])).toBeLessThan(0.6);
  });

  it('moves the keys of a host that leaves (about 1/N) and hardly any other, and every Shuttle agrees', () => {
    const all = hosts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const before = make(all);
    const again = make(hosts([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
    const after = make(all.filter((_, i) => i !== 2));
    let moved = 0;
    let others = 0;
    for (const k of keys) {
      const was = before.choose(undefined, k)!;
      expect(again.choose(undefined, k)!.port).toBe(was.port);
      const now = after.choose(undefined, k)!;
      if (now.port === was.port) continue;
      moved++;
      if (was.port !== all[2].port) others++;
    }
    expect(moved / keys.length).toBeGreaterThan(0.06);
    expect(moved / keys.length).toBeLessThan(0.16);
    // Ring hash: only the removed host's keys; Maglev: a few others too (its tables shift a little).
    expect(others / keys.length).toBeLessThan(make === ring ? 1e-9 : 0.03);
  });

  it('steps over a host that is unavailable or excluded, and only its keys move meanwhile', () => {
    for (let i = 0; i < 64; i++) health.clear(i, HealthFlag.FAILED_ACTIVE_HC | HealthFlag.EJECTED);
    const hs = hosts([1, 1, 1, 1], 10);
    const lb = make(hs);
    const was = keys.map((k) => lb.choose(undefined, k)!);
    health.set(hs[1].index, HealthFlag.EJECTED);
    keys.forEach((k, i) => {
      const now = lb.choose(undefined, k)!;
      expect(now).not.toBe(hs[1]);
      if (was[i] !== hs[1]) expect(now).toBe(was[i]);
    });
    health.clear(hs[1].index, HealthFlag.EJECTED);
    expect(keys.map((k) => lb.choose(undefined, k))).toEqual(was);
    const k = keys[0];
    expect(lb.choose(new Set([was[0]]), k)).not.toBe(was[0]);
    expect(lb.choose(new Set(hs), k)).toBeUndefined();
  });

  it('without a hash picks a host at random', () => {
    const hs = hosts([1, 1, 1], 20);
    const lb = make(hs);
    const seen = new Set<Host>();
    for (let i = 0; i < 200; i++) seen.add(lb.choose()!);
    expect(seen.size).toBe(3);
  });
});

describe('hash_policy', () => {
  const head = (headers: [string, string][], path = '/') => {
    const h = new HeaderMap();
    h.method = 'GET';
    h.path = path;
    for (const [k, v] of headers) h.add(k, v);
    return h;
  };
  it('hashes a header, a cookie, a query parameter or the client address; none found: no hash', () => {
    const h = head([['x-user', 'alice'], ['cookie', 'a=1; session=xyz; b=2']], '/p?tenant=t1');
    expect(requestHash([{ header: { name: 'x-user' }, terminal: false }], h, '10.0.0.9')).toBe(hashKey('alice'));
    expect(requestHash([{ cookie: { name: 'session' }, terminal: false }], h, '10.0.0.9')).toBe(hashKey('xyz'));
    expect(requestHash([{ query_parameter: { name: 'tenant' }, terminal: false }], h, '10.0.0.9')).toBe(hashKey('t1'));
    expect(requestHash([{ source_ip: true, terminal: false }], h, '10.0.0.9')).toBe(hashKey('10.0.0.9'));
    expect(requestHash([{ header: { name: 'x-none' }, terminal: false }], h, '10.0.0.9')).toBeUndefined();
    expect(cookie('a=1;b = 2 ; c', 'b')).toBe('2');
  });

  it('mixes the hashes of every policy found, up to a terminal one', () => {
    const h = head([['x-user', 'alice'], ['x-team', 'blue']]);
    const both = requestHash([{ header: { name: 'x-user' }, terminal: false }, { header: { name: 'x-team' }, terminal: false }], h, '');
    expect(both).not.toBe(hashKey('alice'));
    expect(requestHash([{ header: { name: 'x-user' }, terminal: true }, { header: { name: 'x-team' }, terminal: false }], h, '')).toBe(hashKey('alice'));
    expect(requestHash([{ header: { name: 'x-none' }, terminal: true }, { header: { name: 'x-team' }, terminal: false }], h, '')).toBe(hashKey('blue'));
  });
});
