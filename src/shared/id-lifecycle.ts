/**
 * What the shared tables do when the directory retires or recycles an id (see Directory): the
 * gauges that say an id is still in use, and the cells a recycled id must not inherit.
 */
import type { PolicyTable } from '../filters/shared/policy-table.ts';
import type { AssignOptions, Directory } from './directory.ts';
import type { HealthTable } from './health-table.ts';
import { RequestCells, CLUSTER_BLOCK, LISTENER_BLOCK, ROUTE_BLOCK, type RequestTable } from './request-table.ts';
import { CLUSTER_COUNTERS, H, HOST_COUNTERS, L, LISTENER_COUNTERS, type StatsTable } from './stats-table.ts';

export interface SharedTables {
  stats: StatsTable;
  requests: RequestTable;
  health: HealthTable;
  policy: PolicyTable;
}

/** An id may be recycled only when no thread counts anything open on it. */
export function idleChecks(t: SharedTables): AssignOptions['idle'] {
  const layout = () => t.stats.layout;
  return {
    listeners: (id) => t.stats.sum(layout().listener(id) + L.downstream_cx_active) === 0,
    hosts: (id) => t.stats.sum(layout().host(id) + H.upstream_cx_active) === 0,
    clusters: (id) => t.policy.clusterIdle(id),
  };
}

/**
 * After directory.assign(): a host that left loses its ejection (one that comes back is judged
 * afresh, as Envoy judges a new host); a recycled id's counters, histograms and health start from
 * zero, so the new entity does not report the old one's history.
 */
export function applyIdChanges(directory: Directory, t: SharedTables): void {
  const { recycled, retired } = directory.lastChanges;
  for (const id of retired.hosts) t.health.forget(id);
  const layout = t.stats.layout;
  for (const id of recycled.listeners) {
    t.stats.zero(layout.listener(id), LISTENER_COUNTERS.length);
    t.requests.zero(RequestCells.listener(id), LISTENER_BLOCK);
  }
  for (const id of recycled.clusters) {
    t.stats.zero(layout.cluster(id), CLUSTER_COUNTERS.length);
    t.requests.zero(RequestCells.cluster(id), CLUSTER_BLOCK);
    t.health.setPanic(id, false);
  }
  for (const id of recycled.hosts) {
    t.stats.zero(layout.host(id), HOST_COUNTERS.length);
    t.health.reset(id);
  }
  for (const id of recycled.routes) t.requests.zero(RequestCells.route(id), ROUTE_BLOCK);
}
