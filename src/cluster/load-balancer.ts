/**
 * Load balancers choose a host for one connection or request. All of them skip unavailable hosts
 * (unhealthy, unless the cluster is in panic) and hosts the caller already tried (`exclude`, for
 * connect retries).
 */
import type { ClusterConfig, LbPolicy } from '../config/schema.ts';
import { Maglev, RingHash } from './consistent-hash.ts';
import type { Host } from './host.ts';

export interface LoadBalancer {
  /** `hash`: the request's (consistent-hash balancers use it; the others ignore it). */
  choose(exclude?: ReadonlySet<Host>, hash?: number): Host | undefined;
  /** Picks by the request's hash (ring_hash, maglev): callers compute one only then. */
  readonly needsHash?: boolean;
}

function eligible(host: Host, exclude: ReadonlySet<Host> | undefined): boolean {
  return host.available && !exclude?.has(host);
}

/** Each worker starts at a random host, so workers do not all send their first picks to host 0. */
const randomStart = (hosts: readonly Host[]) => Math.floor(Math.random() * hosts.length);

export class RoundRobin implements LoadBalancer {
  private next: number;
  private readonly hosts: readonly Host[];
  constructor(hosts: readonly Host[], start = randomStart(hosts)) {
    this.hosts = hosts;
    this.next = start;
  }

  choose(exclude?: ReadonlySet<Host>): Host | undefined {
    const n = this.hosts.length;
    for (let i = 0; i < n; i++) {
      const host = this.hosts[(this.next + i) % n];
      if (eligible(host, exclude)) {
        this.next = (this.next + i + 1) % n;
        return host;
      }
    }
    return undefined;
  }
}

/** Smooth weighted round robin (nginx): weights 5,1,1 give a,a,b,a,c,a,a, not a,a,a,a,a,b,c. */
export class WeightedRoundRobin implements LoadBalancer {
  private readonly hosts: readonly Host[];
  private readonly current: Float64Array;
  constructor(hosts: readonly Host[]) {
    this.hosts = hosts;
    this.current = new Float64Array(hosts.length);
  }

  choose(exclude?: ReadonlySet<Host>): Host | undefined {
    let total = 0;
    let best = -1;
    for (let i = 0; i < this.hosts.length; i++) {
      const host = this.hosts[i];
      if (!eligible(host, exclude)) continue;
      this.current[i] += host.weight;
      total += host.weight;
      if (best < 0 || this.current[i] > this.current[best]) best = i;
    }
    if (best < 0) return undefined;
    this.current[best] -= total;
    return this.hosts[best];
  }
}

/** Weighted random; with the default weight of 1, uniform. */
export class RandomChoice implements LoadBalancer {
  private readonly hosts: readonly Host[];
  private readonly random: () => number;
  constructor(hosts: readonly Host[], random: () => number = Math.random) {
    this.hosts = hosts;
    this.random = random;
  }

  choose(exclude?: ReadonlySet<Host>): Host | undefined {
    let total = 0;
    for (const host of this.hosts) if (eligible(host, exclude)) total += host.weight;
    if (total === 0) return undefined;
    let point = this.random() * total;
    let last: Host | undefined;
    for (const host of this.hosts) {
      if (!eligible(host, exclude)) continue;
      last = host;
      point -= host.weight;
      if (point < 0) return host;
    }
    return last;
  }
}

/** Fewest active connections (from this worker) per unit of weight; ties rotate. */
export class LeastConnections implements LoadBalancer {
  private next: number;
  private readonly hosts: readonly Host[];
  constructor(hosts: readonly Host[], start = randomStart(hosts)) {
    this.hosts = hosts;
    this.next = start;
  }

  choose(exclude?: ReadonlySet<Host>): Host | undefined {
    const n = this.hosts.length;
    let best: Host | undefined;
    let bestScore = Infinity;
    for (let i = 0; i < n; i++) {
      const host = this.hosts[(this.next + i) % n];
      if (!eligible(host, exclude)) continue;
      const score = host.activeConnections / host.weight;
      if (score < bestScore) {
        best = host;
        bestScore = score;
      }
    }
    this.next = (this.next + 1) % n;
    return best;
  }
}

const FACTORIES: Record<LbPolicy, (hosts: readonly Host[], c: ClusterConfig) => LoadBalancer> = {
  round_robin: (hosts) => new RoundRobin(hosts),
  weighted_round_robin: (hosts) => new WeightedRoundRobin(hosts),
  random: (hosts) => new RandomChoice(hosts),
  least_connections: (hosts) => new LeastConnections(hosts),
  ring_hash: (hosts, c) => new RingHash(hosts, { minimumRingSize: c.ring_hash?.minimum_ring_size ?? 1024, maximumRingSize: c.ring_hash?.maximum_ring_size ?? 8_388_608 }),
  maglev: (hosts, c) => new Maglev(hosts, c.maglev?.table_size ?? 65_537),
};

export function createLoadBalancer(cluster: ClusterConfig, hosts: readonly Host[]): LoadBalancer {
  return FACTORIES[cluster.lb_policy](hosts, cluster);
}
