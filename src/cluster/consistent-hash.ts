/**
 * Consistent-hash load balancing (Envoy's RING_HASH and MAGLEV): a request's hash (a header, a
 * cookie, the client's address: see proxy/http/hash-policy.ts) picks a host, the same host for
 * the same key, and when a host leaves only the keys it had move.
 *
 *   ring hash: every host owns points on a 32-bit ring, 160 per unit of weight (more if the ring
 *     would be under minimum_ring_size, fewer if over maximum_ring_size); a key goes to the first
 *     point at or after its hash. Removing one of N hosts moves its ~1/N of the keys, and only
 *     those while the ring's size rule stays put.
 *   Maglev: a table of table_size (a prime) slots filled by each host's own permutation, in turns
 *     weighted by its weight; a key goes to slot hash mod table_size. Lookup is one array read;
 *     removing a host moves slightly more than 1/N of the keys.
 *
 * Both are built once per host set (a cluster generation), not per request. A host that is not
 * available now (unhealthy, ejected) or that a retry excludes is stepped over: the next point or
 * slot that names another host answers, so only that host's keys move while it is away. No hash
 * (no policy, or its value absent): a host at random, as Envoy does.
 *
 * Hashes: 32-bit murmur3 of UTF-8 strings. Any Shuttle maps a key to the same host given the same
 * hosts (what a fleet of sidecars needs); the values are not Envoy's xxHash64.
 */
import type { Host } from './host.ts';
import type { LoadBalancer } from './load-balancer.ts';

const encoder = new TextEncoder();

/** murmur3 (x86, 32-bit) of a string's UTF-8 bytes. */
export function hashKey(key: string, seed = 0): number {
  const bytes = encoder.encode(key);
  let h = seed >>> 0;
  const n = bytes.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = bytes[blocks];
    if (tail > 1) k ^= bytes[blocks + 1] << 8;
    if (tail > 2) k ^= bytes[blocks + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function eligible(host: Host, exclude: ReadonlySet<Host> | undefined): boolean {
  return host.available && !exclude?.has(host);
}

/** Without a hash: a host at random among those eligible (weighted). */
function randomHost(hosts: readonly Host[], exclude: ReadonlySet<Host> | undefined): Host | undefined {
  let total = 0;
  for (const h of hosts) if (eligible(h, exclude)) total += h.weight;
  let point = Math.random() * total;
  for (const h of hosts) {
    if (!eligible(h, exclude)) continue;
    point -= h.weight;
    if (point < 0) return h;
  }
  return undefined;
}

const POINTS_PER_WEIGHT = 160;

export interface RingHashOptions {
  minimumRingSize: number;
  maximumRingSize: number;
}

export class RingHash implements LoadBalancer {
  readonly needsHash = true;
  private readonly hosts: readonly Host[];
  /** Ring points, ascending, and the host (index into `hosts`) of each. */
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;

  constructor(hosts: readonly Host[], opts: RingHashOptions) {
    this.hosts = hosts;
    const total = hosts.reduce((n, h) => n + h.weight, 0) || 1;
    // Points per unit of weight: ketama's 160, more when that would not make minimum_ring_size,
    // fewer when it would pass maximum_ring_size. Fixed per host where possible, so that a host
    // coming or going adds or removes only its own points (a per-host share of a fixed ring size,
    // as Envoy's, gives every host more points when one leaves, and moves other hosts' keys too).
    const perWeight = Math.min(Math.max(POINTS_PER_WEIGHT, Math.ceil(opts.minimumRingSize / total)), Math.max(1, Math.floor(opts.maximumRingSize / total)));
    const entries: [number, number][] = [];
    hosts.forEach((h, i) => {
      const count = Math.max(1, h.weight * perWeight);
      for (let r = 0; r < count; r++) entries.push([hashKey(`${h.address}_${r}`), i]);
    });
    // Equal points: the lower host index first, so every Shuttle orders them alike.
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.points = Uint32Array.from(entries, (e) => e[0]);
    this.owners = Uint16Array.from(entries, (e) => e[1]);
  }

  choose(exclude?: ReadonlySet<Host>, hash?: number): Host | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    if (hash === undefined) return randomHost(this.hosts, exclude);
    // First point at or after the hash (binary search), wrapping around.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    const start = lo === n ? 0 : lo;
    // Step over points of hosts that cannot take it now; each host is looked at once at most.
    let looked = 0;
    for (let i = 0; i < n && looked < this.hosts.length * 4; i++) {
      const host = this.hosts[this.owners[(start + i) % n]];
      if (eligible(host, exclude)) return host;
      looked++;
    }
    return randomHost(this.hosts, exclude);
  }
}

export class Maglev implements LoadBalancer {
  readonly needsHash = true;
  private readonly hosts: readonly Host[];
  /** Slot → host index. */
  private readonly table: Uint16Array;

  constructor(hosts: readonly Host[], tableSize: number) {
    this.hosts = hosts;
    this.table = new Uint16Array(hosts.length === 0 ? 0 : tableSize);
    if (hosts.length === 0) return;
    const m = tableSize;
    const offsets = hosts.map((h) => hashKey(h.address, 0x9747b28c) % m);
    const skips = hosts.map((h) => (hashKey(h.address, 0x5bd1e995) % (m - 1)) + 1);
    const next = new Array<number>(hosts.length).fill(0);
    const maxWeight = Math.max(...hosts.map((h) => h.weight));
    const credit = new Array<number>(hosts.length).fill(0);
    const filled = new Uint8Array(m);
    let count = 0;
    // Weighted turns (Envoy's): each round every host earns weight/maxWeight of a turn.
    for (let round = 0; count < m; round++) {
      for (let i = 0; i < hosts.length && count < m; i++) {
        credit[i] += hosts[i].weight / maxWeight;
        if (credit[i] < 1) continue;
        credit[i] -= 1;
        let slot: number;
        do {
          slot = (offsets[i] + next[i] * skips[i]) % m;
          next[i]++;
        } while (filled[slot]);
        filled[slot] = 1;
        this.table[slot] = i;
        count++;
      }
    }
  }

  choose(exclude?: ReadonlySet<Host>, hash?: number): Host | undefined {
    const m = this.table.length;
    if (m === 0) return undefined;
    if (hash === undefined) return randomHost(this.hosts, exclude);
    const slot = hash % m;
    // Step over slots of hosts that cannot take it now (a few: then at random).
    for (let i = 0; i < this.hosts.length * 4; i++) {
      const host = this.hosts[this.table[(slot + i) % m]];
      if (eligible(host, exclude)) return host;
    }
    return randomHost(this.hosts, exclude);
  }
}
