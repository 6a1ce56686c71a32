/**
 * What makes an endpoint update cheap at scale: GenerationParser (parses again only the listeners
 * and clusters whose input changed, and is equivalent to parsing the whole) and hostsOnlyChange
 * (recognises a generation that changed only hosts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffConfigs, hostsOnlyChange } from '../src/config/diff.ts';
import { xdsConfigSchema } from '../src/config/schema.ts';
import { GenerationParser } from '../src/xds/generation-parser.ts';

const base = { version: 1, admin: { address: '127.0.0.1:0' } };
const cluster = (name: string, ports: number[], extra: Record<string, unknown> = {}) => ({ name, hosts: ports.map((p) => `127.0.0.1:${p}`), ...extra });
const listener = (clusters: string[]) => ({
  name: 'web', address: '127.0.0.1:0', protocol: 'http',
  virtual_hosts: [{ name: 'all', domains: ['*'], routes: clusters.map((c) => ({ match: { prefix: `/${c}/` }, cluster: c })) }],
});
const generation = (clusters: ReturnType<typeof cluster>[]) => ({ ...base, listeners: [listener(clusters.map((c) => c.name))], clusters });

describe('GenerationParser', () => {
  it('gives what parsing the whole config gives, for any mix of valid and invalid clusters', () => {
    fc.assert(fc.property(fc.array(fc.record({ ports: fc.array(fc.integer({ min: -5, max: 70_000 }), { maxLength: 4 }), weight: fc.option(fc.integer({ min: -1, max: 3 })) }), { minLength: 1, maxLength: 6 }), (specs) => {
      const raw = generation(specs.map((s, i) => cluster(`c${i}`, s.ports, s.weight === null ? {} : { hosts: s.ports.map((p) => ({ address: `127.0.0.1:${p}`, weight: s.weight })) })));
      const whole = xdsConfigSchema.safeParse(raw);
      const parser = new GenerationParser();
      for (let round = 0; round < 2; round++) {
        const mine = parser.parse(raw);
        expect(mine.success).toBe(whole.success);
        if (mine.success && whole.success) expect(mine.data).toEqual(whole.data);
        if (!mine.success && !whole.success) expect(mine.issues.map((i) => i.path.join('.')).sort()).toEqual(whole.error.issues.map((i) => i.path.join('.')).sort());
      }
    }), { numRuns: 60 });
  });

  it('reuses the parsed object of every unchanged listener and cluster, so a diff sees them by identity', () => {
    const parser = new GenerationParser();
    const clusters = Array.from({ length: 50 }, (_, i) => cluster(`c${i}`, [1000 + i]));
    const first = parser.parse(generation(clusters));
    const second = parser.parse(generation(clusters.map((c, i) => (i === 7 ? cluster('c7', [2000, 2001]) : structuredClone(c)))));
    if (!first.success || !second.success) throw new Error('expected both to parse');
    expect(second.data.listeners[0]).toBe(first.data.listeners[0]);
    second.data.clusters.forEach((c, i) => (i === 7 ? expect(c).not.toBe(first.data.clusters[i]) : expect(c).toBe(first.data.clusters[i])));
    expect(Object.isFrozen(second.data.clusters[7].hosts)).toBe(true);
    expect(hostsOnlyChange(first.data, second.data, diffConfigs(first.data, second.data))).toEqual(['c7']);
  });

  it('names the failing cluster by its place in the whole config', () => {
    const parser = new GenerationParser();
    const bad = parser.parse(generation([cluster('a', [1]), cluster('b', [1]), { name: 'c', hosts: ['not an address'] } as any]));
    expect(bad.success).toBe(false);
    if (!bad.success) expect(bad.issues[0].path.slice(0, 3)).toEqual(['clusters', 2, 'hosts']);
  });
});

describe('hostsOnlyChange', () => {
  const parse = (raw: unknown) => xdsConfigSchema.parse(raw);
  const before = parse(generation([cluster('a', [1]), cluster('b', [2])]));
  const check = (after: ReturnType<typeof parse>) => hostsOnlyChange(before, after, diffConfigs(before, after));

  it('is the changed clusters when only their hosts changed', () => {
    expect(check(parse(generation([cluster('a', [1, 3]), cluster('b', [2])])))).toEqual(['a']);
    expect(check(parse(generation([cluster('a', []), cluster('b', [4])])))).toEqual(['a', 'b']);
  });

  it('is undefined for anything else: another cluster field, a cluster added, a route, nothing at all', () => {
    expect(check(parse(generation([cluster('a', [1], { lb_policy: 'random' }), cluster('b', [2])])))).toBeUndefined();
    expect(check(parse(generation([cluster('a', [1]), cluster('b', [2]), cluster('c', [3])])))).toBeUndefined();
    expect(check(parse({ ...generation([cluster('a', [1]), cluster('b', [2])]), listeners: [listener(['a'])] }))).toBeUndefined();
    expect(check(parse({ ...generation([cluster('a', [1, 5]), cluster('b', [2])]), drain_timeout: '3s' }))).toBeUndefined();
    expect(check(parse(generation([cluster('a', [1]), cluster('b', [2])])))).toBeUndefined();
  });
});
