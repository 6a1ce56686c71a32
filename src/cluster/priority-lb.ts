/**
 * Priority levels (Envoy's EDS priorities, its failover): level 0 takes the traffic while enough
 * of its hosts are available, and the levels behind it take the share it cannot. With Envoy's
 * overprovisioning factor (1.4), a level whose hosts are 80% available still takes all of the
 * traffic (80% × 1.4 ≥ 100%); at 50% it takes 70% and the next level 30%. When no level has an
 * available host, level 0 takes it all (panic is the cluster's own, see HealthTable).
 */
import type { ClusterConfig } from '../config/schema.ts';
import type { Host } from './host.ts';
import { createLoadBalancer, type LoadBalancer } from './load-balancer.ts';

const OVERPROVISIONING = 1.4;

/**
 * Each level's share of the traffic (percentages adding up to 100) from the percentage of its
 * hosts that are available, as Envoy computes priority load: health is overprovisioned and
 * capped at 100; levels fill in order; when the levels' health adds up to less than 100, the
 * shares are scaled up to make 100 (normalised).
 */
export function priorityLoads(availablePercent: readonly number[], overprovisioning = OVERPROVISIONING): number[] {
  const health = availablePercent.map((p) => Math.min(100, p * overprovisioning));
  const total = Math.min(100, health.reduce((a, b) => a + b, 0));
  if (total === 0) return health.map((_, i) => (i === 0 ? 100 : 0));
  let left = 100;
  return health.map((h) => {
    const share = Math.min(left, (h * 100) / total);
    left -= share;
    return share;
  });
}

interface Level {
  hosts: readonly Host[];
  lb: LoadBalancer;
}

export class PriorityLoadBalancer implements LoadBalancer {
  private readonly levels: readonly Level[];
  private readonly random: () => number;
  readonly needsHash: boolean;

  constructor(levels: readonly Level[], random: () => number = Math.random) {
    this.levels = levels;
    this.random = random;
    this.needsHash = levels.some((l) => l.lb.needsHash);
  }

  choose(exclude?: ReadonlySet<Host>, hash?: number): Host | undefined {
    const loads = priorityLoads(this.levels.map((l) => (100 * countAvailable(l.hosts)) / l.hosts.length));
    let point = this.random() * 100;
    let picked = loads.length - 1;
    for (let i = 0; i < loads.length; i++) {
      point -= loads[i];
      if (point < 0) {
        picked = i;
        break;
      }
    }
    // The level's own balancer; if it has nothing left to offer (retries excluded its hosts), the others in order.
    const host = this.levels[picked].lb.choose(exclude, hash);
    if (host) return host;
    for (let i = 0; i < this.levels.length; i++) {
      if (i === picked) continue;
      const other = this.levels[i].lb.choose(exclude, hash);
      if (other) return other;
    }
    return undefined;
  }
}

function countAvailable(hosts: readonly Host[]): number {
  let n = 0;
  for (const h of hosts) if (h.available) n++;
  return n;
}

/** The cluster's balancer: one per priority level behind a PriorityLoadBalancer when hosts have levels. */
export function balancerFor(cluster: ClusterConfig, hosts: readonly Host[]): LoadBalancer {
  if (hosts.every((h) => h.priority === 0)) return createLoadBalancer(cluster, hosts);
  const byLevel = new Map<number, Host[]>();
  for (const h of hosts) {
    const list = byLevel.get(h.priority);
    if (list) list.push(h);
    else byLevel.set(h.priority, [h]);
  }
  const levels = [...byLevel.keys()].sort((a, b) => a - b).map((p) => ({ hosts: byLevel.get(p)!, lb: createLoadBalancer(cluster, byLevel.get(p)!) }));
  return new PriorityLoadBalancer(levels);
}
