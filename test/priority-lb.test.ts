/** Priority levels (src/cluster/priority-lb.ts): Envoy's priority load, and the balancer over levels. */
import { describe, expect, it } from 'vitest';
import { Host } from '../src/cluster/host.ts';
import { balancerFor, PriorityLoadBalancer, priorityLoads } from '../src/cluster/priority-lb.ts';
import { RoundRobin } from '../src/cluster/load-balancer.ts';
import { HealthFlag, HealthTable } from '../src/shared/health-table.ts';
import type { ClusterConfig } from '../src/config/schema.ts';

const health = HealthTable.create(8, 1);
const RR = { lb_policy: 'round_robin' } as ClusterConfig;
const host = (i: number, priority: number) => new Host({ host: '127.0.0.1', port: 9000 + i, weight: 1, priority }, i, 0, health);

describe('priority levels', () => {
  it('computes Envoy\'s priority load: overprovisioned by 1.4, filled in order, normalised', () => {
    expect(priorityLoads([100, 100])).toEqual([100, 0]);
    expect(priorityLoads([80, 100])).toEqual([100, 0]); // 80 × 1.4 ≥ 100
    expect(priorityLoads([50, 100]).map(Math.round)).toEqual([70, 30]);
    expect(priorityLoads([50, 50, 100]).map(Math.round)).toEqual([70, 30, 0]);
    expect(priorityLoads([20, 20]).map(Math.round)).toEqual([50, 50]); // 28 + 28 < 100: scaled up
    expect(priorityLoads([0, 0])).toEqual([100, 0]);
    expect(priorityLoads([0, 100])).toEqual([0, 100]);
  });

  it('sends to level 0, spills to level 1 as level 0 loses hosts, and comes back', () => {
    for (let i = 0; i < 8; i++) health.clear(i, HealthFlag.FAILED_ACTIVE_HC | HealthFlag.EJECTED);
    const hosts = [host(0, 0), host(1, 0), host(2, 1), host(3, 1)];
    const lb = balancerFor(RR, hosts);
    expect(lb).toBeInstanceOf(PriorityLoadBalancer);
    const level = (n: number) => {
      const counts = [0, 0];
      for (let i = 0; i < n; i++) counts[lb.choose()!.priority]++;
      return counts;
    };
    expect(level(1000)).toEqual([1000, 0]);
    health.set(0, HealthFlag.FAILED_ACTIVE_HC); // level 0 at 50%: 70% stays there, 30% spills
    const [p0, p1] = level(4000);
    expect(p0 / 4000).toBeGreaterThan(0.64);
    expect(p0 / 4000).toBeLessThan(0.76);
    expect(p1).toBe(4000 - p0);
    health.set(1, HealthFlag.EJECTED); // level 0 gone: all to level 1
    expect(level(500)).toEqual([0, 500]);
    health.clear(0, HealthFlag.FAILED_ACTIVE_HC);
    health.clear(1, HealthFlag.EJECTED);
    expect(level(500)).toEqual([500, 0]);
  });

  it('a retry that excluded the picked level\'s hosts gets a host of another level', () => {
    for (let i = 0; i < 8; i++) health.clear(i, HealthFlag.FAILED_ACTIVE_HC | HealthFlag.EJECTED);
    const a = host(0, 0);
    const b = host(1, 1);
    const lb = new PriorityLoadBalancer([{ hosts: [a], lb: new RoundRobin([a], 0) }, { hosts: [b], lb: new RoundRobin([b], 0) }], () => 0);
    expect(lb.choose()).toBe(a);
    expect(lb.choose(new Set([a]))).toBe(b);
    expect(lb.choose(new Set([a, b]))).toBeUndefined();
  });

  it('hosts without levels keep the plain balancer', () => {
    expect(balancerFor(RR, [host(0, 0), host(1, 0)])).toBeInstanceOf(RoundRobin);
  });
});

describe('EDS priorities', () => {
  it('map to host priorities; a non-default overprovisioning factor is refused with its path', async () => {
    const { mapLoadAssignment } = await import('../src/xds/mapping.ts');
    const ep = (port: number) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } });
    const cla = (policy?: Record<string, unknown>) => ({ cluster_name: 'c', endpoints: [{ lb_endpoints: [ep(1)] }, { priority: 1, lb_endpoints: [ep(2)] }], ...(policy ? { policy } : {}) });
    expect(mapLoadAssignment(cla()).hosts).toEqual([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2', weight: 1, priority: 1 }]);
    expect(() => mapLoadAssignment(cla({ overprovisioning_factor: { value: 200 } }))).toThrow('policy.overprovisioning_factor: only the default, 140, is supported with priorities');
  });
});
