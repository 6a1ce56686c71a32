import { describe, expect, it } from 'vitest';
import { Host } from '../src/cluster/host.ts';
import { LeastConnections, RandomChoice, RoundRobin, WeightedRoundRobin } from '../src/cluster/load-balancer.ts';
import { HealthFlag, HealthTable } from '../src/shared/health-table.ts';

const health = HealthTable.create(8, 1);
const hosts = (...weights: number[]) => {
  for (let i = 0; i < 8; i++) health.clear(i, HealthFlag.FAILED_ACTIVE_HC | HealthFlag.EJECTED);
  health.setPanic(0, false);
  return weights.map((weight, i) => new Host({ host: '127.0.0.1', port: 9000 + i, weight }, i, 0, health));
};
const ports = (picks: (Host | undefined)[]) => picks.map((h) => (h ? h.port - 9000 : -1));
const pick = (lb: { choose(ex?: ReadonlySet<Host>): Host | undefined }, n: number, ex?: ReadonlySet<Host>) => Array.from({ length: n }, () => lb.choose(ex));

describe('load balancers', () => {
  it('round robin cycles and skips unhealthy and excluded hosts', () => {
    const hs = hosts(1, 1, 1);
    const lb = new RoundRobin(hs, 0);
    expect(ports(pick(lb, 6))).toEqual([0, 1, 2, 0, 1, 2]);
    health.set(1, HealthFlag.FAILED_ACTIVE_HC);
    expect(ports(pick(lb, 4))).toEqual([0, 2, 0, 2]);
    expect(ports(pick(lb, 2, new Set([hs[0]])))).toEqual([2, 2]);
    health.set(0, HealthFlag.EJECTED);
    health.set(2, HealthFlag.FAILED_ACTIVE_HC);
    expect(lb.choose()).toBeUndefined();
    // In panic every host is eligible again.
    health.setPanic(0, true);
    expect(ports(pick(lb, 3))).toEqual([0, 1, 2]);
  });

  it('weighted round robin is smooth (5:1:1 → a a b a c a a)', () => {
    const lb = new WeightedRoundRobin(hosts(5, 1, 1));
    expect(ports(pick(lb, 7))).toEqual([0, 0, 1, 0, 2, 0, 0]);
    const counts = [0, 0, 0];
    for (const h of pick(lb, 700)) counts[h!.port - 9000]++;
    expect(counts).toEqual([500, 100, 100]);
  });

  it('weighted round robin leaves out an excluded host and keeps the others\' ratio', () => {
    const hs = hosts(2, 1, 1);
    const lb = new WeightedRoundRobin(hs);
    const counts = [0, 0, 0];
    for (const h of pick(lb, 300, new Set([hs[2]]))) counts[h!.port - 9000]++;
    expect(counts).toEqual([200, 100, 0]);
  });

  it('random follows the weights', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const lb = new RandomChoice(hosts(3, 1), rand);
    const counts = [0, 0];
    for (const h of pick(lb, 10_000)) counts[h!.port - 9000]++;
    expect(counts[0] / 10_000).toBeGreaterThan(0.72);
    expect(counts[0] / 10_000).toBeLessThan(0.78);
  });

  it('least connections picks the least busy host, weight-adjusted, rotating on ties', () => {
    const hs = hosts(1, 1, 2);
    const lb = new LeastConnections(hs, 0);
    hs[0].activeConnections = 3;
    hs[1].activeConnections = 1;
    hs[2].activeConnections = 4; // 4 / weight 2 = 2
    expect(lb.choose()?.port).toBe(9001);
    hs[1].activeConnections = 2; // now 3, 2, 2: hosts 1 and 2 tie
    const tied = new Set(ports(pick(lb, 4)));
    expect(tied).toEqual(new Set([1, 2]));
  });
});
