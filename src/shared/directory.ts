/**
 * Stable ids for listeners, clusters and hosts, kept across config reloads. The shared tables are
 * indexed by these ids, so an entity that survives a reload keeps its counters and its health
 * state in place, and connections opened under an older config keep writing to the right cells.
 * Ids are never reused within a process; the tables are sized for the capacities below.
 *
 * The main thread owns the directory (append-only) and sends each config's ids with its snapshot.
 */
import { formatAddress } from '../config/address.ts';
import type { ShuttleConfig } from '../config/schema.ts';

export const MAX_LISTENERS = 256;
export const MAX_CLUSTERS = 1024;
export const MAX_HOSTS = 2048;
/** Named routes (a listener's routes with a `name`; routes of one listener that share a name share their stats). */
export const MAX_ROUTES = 512;
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

export class Directory {
  private readonly listeners = new Map<string, number>();
  private readonly clusters = new Map<string, number>();
  private readonly hosts = new Map<string, number>();
  private readonly routes = new Map<string, number>();

  /** Ids for every entity of `config`, allocating new ones; throws if a table would overflow. */
  assign(config: ShuttleConfig): EntityIds {
    const newListeners = config.listeners.filter((l) => !this.listeners.has(l.name)).length;
    const newClusters = config.clusters.filter((c) => !this.clusters.has(c.name)).length;
    const newHosts = config.clusters.reduce((n, c) => n + c.hosts.filter((h) => !this.hosts.has(hostKey(c.name, formatAddress(h)))).length, 0);
    const newRoutes = config.listeners.reduce((n, l) => n + namedRoutes(l).filter((r) => !this.routes.has(routeKey(l.name, r))).length, 0);
    if (this.listeners.size + newListeners > MAX_LISTENERS || this.clusters.size + newClusters > MAX_CLUSTERS || this.hosts.size + newHosts > MAX_HOSTS || this.routes.size + newRoutes > MAX_ROUTES) {
      throw new Error(`too many distinct listeners, clusters, hosts or named routes over this process's life (limits ${MAX_LISTENERS}/${MAX_CLUSTERS}/${MAX_HOSTS}/${MAX_ROUTES}): restart or upgrade to reset`);
    }
    const id = (map: Map<string, number>, key: string) => {
      let v = map.get(key);
      if (v === undefined) map.set(key, (v = map.size));
      return v;
    };
    return {
      listeners: config.listeners.map((l) => id(this.listeners, l.name)),
      clusters: config.clusters.map((c) => id(this.clusters, c.name)),
      hosts: config.clusters.map((c) => c.hosts.map((h) => id(this.hosts, hostKey(c.name, formatAddress(h))))),
      routes: config.listeners.map((l) => namedRoutes(l).map((r) => id(this.routes, routeKey(l.name, r)))),
    };
  }
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
