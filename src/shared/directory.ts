/**
 * Stable ids for listeners, clusters, hosts and named routes, kept across config reloads. The
 * shared tables are indexed by these ids, so an entity that survives a reload keeps its counters
 * and its health state in place, and connections opened under an older config keep writing to the
 * right cells. The tables are sized for the capacities below.
 *
 * An id whose entity left the config is retired, not freed at once: an entity that comes back
 * soon (an endpoint flapping in EDS) gets its old id and counters again, and something still
 * holding the old entity (a connection, a request) keeps writing to its own cells. A retired id
 * is recycled for a new entity only when it has been out of the config for the quarantine and its
 * gauges say nothing uses it (the caller's `idle`); its cells are zeroed first (`recycled`). So a
 * mesh whose endpoints change all day (pods rescheduled) never runs out of ids, where a table
 * sized once would fill up over a process's life.
 *
 * The main thread owns the directory and sends each config's ids with its snapshot.
 */
import { formatAddress } from '../config/address.ts';
import type { ShuttleConfig } from '../config/schema.ts';

export const MAX_LISTENERS = 256;
export const MAX_CLUSTERS = 1024;
/** Hosts of every cluster at once (10,000 endpoints from xDS fit, with room for churn). */
export const MAX_HOSTS = 16384;
/** Named routes (a listener's routes with a `name`; routes of one listener that share a name share their stats). */
export const MAX_ROUTES = 2048;
/** Worker threads alive at once (a reload that replaces workers runs old and new side by side). */
export const MAX_WORKER_SLOTS = 64;

/** Ids of one config's entities, in config order. */
export interface EntityIds {
  listeners: number[];
  clusters: number[];
  /** Per cluster (config order), per host. */
  hosts: number[][];
  /** Per listener (config order), per named route (namedRoutes order). */
  routes: number[][];
}

/**
 * The distinct route names of a listener, in order of first appearance (HTTP routes, then RPC
 * routes): the routes that get their own stats. Unnamed routes are counted only in their
 * listener's and cluster's stats, which keeps label cardinality what the operator chose.
 */
export function namedRoutes(listener: ShuttleConfig['listeners'][number]): string[] {
  const names = new Set<string>();
  for (const vh of listener.virtual_hosts ?? []) for (const r of vh.routes) if (r.name !== undefined) names.add(r.name);
  for (const r of listener.rpc?.routes ?? []) if (r.name !== undefined) names.add(r.name);
  return [...names];
}

export function hostKey(cluster: string, address: string): string {
  return `${cluster}/${address}`;
}

export type EntityKind = 'listeners' | 'clusters' | 'hosts' | 'routes';
const KINDS: readonly EntityKind[] = ['listeners', 'clusters', 'hosts', 'routes'];
const CAPACITY: Record<EntityKind, number> = { listeners: MAX_LISTENERS, clusters: MAX_CLUSTERS, hosts: MAX_HOSTS, routes: MAX_ROUTES };

/** Ids that changed hands or left with an assignment. */
export type IdChanges = Record<EntityKind, number[]>;

export interface AssignOptions {
  now?: number;
  /** Whether nothing uses the id now (its gauges are zero): a retired id is recycled only then. */
  idle?: Partial<Record<EntityKind, (id: number) => boolean>>;
}

/** One kind's ids. */
class IdSpace {
  private readonly byKey = new Map<string, number>();
  private readonly keyOf: string[] = [];
  /** Retired ids and when they left the config; oldest first (a Map keeps insertion order). */
  private readonly retired = new Map<number, number>();
  private readonly capacity: number;
  private readonly quarantineMs: number;

  constructor(capacity: number, quarantineMs: number) {
    this.capacity = capacity;
    this.quarantineMs = quarantineMs;
  }

  private recyclable(id: number, wanted: ReadonlySet<string>, now: number, idle: (id: number) => boolean): boolean {
    return now - this.retired.get(id)! >= this.quarantineMs && !wanted.has(this.keyOf[id]) && idle(id);
  }

  /** How many new ids `wanted` needs beyond what is free or recyclable (0: it fits). */
  shortfall(wanted: ReadonlySet<string>, now: number, idle: (id: number) => boolean): number {
    let needed = 0;
    for (const k of wanted) if (!this.byKey.has(k)) needed++;
    if (needed === 0) return 0;
    let room = this.capacity - this.keyOf.length;
    for (const id of this.retired.keys()) if (room < needed && this.recyclable(id, wanted, now, idle)) room++;
    return Math.max(0, needed - room);
  }

  /** Ids for `wanted` (call after shortfall() said 0): retires what left, recycles if it must. */
  assign(wanted: ReadonlySet<string>, now: number, idle: (id: number) => boolean, changes: { recycled: number[]; retired: number[] }): ReadonlyMap<string, number> {
    for (const [k, id] of this.byKey) {
      if (wanted.has(k)) this.retired.delete(id);
      else if (!this.retired.has(id)) {
        this.retired.set(id, now);
        changes.retired.push(id);
      }
    }
    for (const k of wanted) {
      if (this.byKey.has(k)) continue;
      let id = this.keyOf.length;
      if (id < this.capacity) this.keyOf.push(k);
      else {
        id = -1;
        for (const r of this.retired.keys()) if (this.recyclable(r, wanted, now, idle)) {
          id = r;
          break;
        }
        if (id < 0) throw new Error('no id left: shortfall() was not asked first');
        this.retired.delete(id);
        this.byKey.delete(this.keyOf[id]);
        this.keyOf[id] = k;
        changes.recycled.push(id);
      }
      this.byKey.set(k, id);
    }
    return this.byKey;
  }
}

export class Directory {
  private readonly spaces: Record<EntityKind, IdSpace>;
  /** Ids recycled and retired by the last assign(): the caller zeroes and resets their cells. */
  lastChanges: { recycled: IdChanges; retired: IdChanges } = { recycled: emptyChanges(), retired: emptyChanges() };

  /** `quarantineMs`: how long a retired id waits before a new entity may take it. */
  constructor(quarantineMs = 60_000) {
    this.spaces = { listeners: new IdSpace(MAX_LISTENERS, quarantineMs), clusters: new IdSpace(MAX_CLUSTERS, quarantineMs), hosts: new IdSpace(MAX_HOSTS, quarantineMs), routes: new IdSpace(MAX_ROUTES, quarantineMs) };
  }

  /** Ids for every entity of `config`; throws (changing nothing) if a table has no room left. */
  assign(config: ShuttleConfig, opts: AssignOptions = {}): EntityIds {
    const now = opts.now ?? Date.now();
    const idle = (kind: EntityKind) => opts.idle?.[kind] ?? (() => true);
    const wanted: Record<EntityKind, Set<string>> = {
      listeners: new Set(config.listeners.map((l) => l.name)),
      clusters: new Set(config.clusters.map((c) => c.name)),
      hosts: new Set(config.clusters.flatMap(hostKeys)),
      routes: new Set(config.listeners.flatMap((l) => namedRoutes(l).map((r) => routeKey(l.name, r)))),
    };
    const short = KINDS.map((k) => [k, this.spaces[k].shortfall(wanted[k], now, idle(k))] as const).filter(([, n]) => n > 0);
    if (short.length > 0) {
      throw new Error(`no room for ${short.map(([k, n]) => `${n} more ${k} (at most ${CAPACITY[k]} at once)`).join(', ')}: ids of removed ones are reused once nothing uses them for a minute`);
    }
    const recycled = emptyChanges();
    const retired = emptyChanges();
    const ids = {} as Record<EntityKind, ReadonlyMap<string, number>>;
    for (const k of KINDS) ids[k] = this.spaces[k].assign(wanted[k], now, idle(k), { recycled: recycled[k], retired: retired[k] });
    this.lastChanges = { recycled, retired };
    return {
      listeners: config.listeners.map((l) => ids.listeners.get(l.name)!),
      clusters: config.clusters.map((c) => ids.clusters.get(c.name)!),
      hosts: config.clusters.map((c) => hostKeys(c).map((k) => ids.hosts.get(k)!)),
      routes: config.listeners.map((l) => namedRoutes(l).map((r) => ids.routes.get(routeKey(l.name, r))!)),
    };
  }
}

/** A cluster's host keys, kept per (frozen) cluster object: 10,000 endpoints are not formatted again for each endpoint update. */
const hostKeyCache = new WeakMap<ShuttleConfig['clusters'][number], string[]>();
function hostKeys(c: ShuttleConfig['clusters'][number]): string[] {
  let keys = hostKeyCache.get(c);
  if (!keys) hostKeyCache.set(c, (keys = c.hosts.map((h) => hostKey(c.name, formatAddress(h)))));
  return keys;
}

function emptyChanges(): IdChanges {
  return { listeners: [], clusters: [], hosts: [], routes: [] };
}

export function routeKey(listener: string, route: string): string {
  return `${listener}/${route}`;
}

/** Ids by config position, for code (and tests) that build a single config's view. */
export function positionalIds(config: ShuttleConfig): EntityIds {
  let next = 0;
  let nextRoute = 0;
  return {
    listeners: config.listeners.map((_, i) => i),
    clusters: config.clusters.map((_, i) => i),
    hosts: config.clusters.map((c) => c.hosts.map(() => next++)),
    routes: config.listeners.map((l) => namedRoutes(l).map(() => nextRoute++)),
  };
}
