/**
 * Counters shared by all threads: one Float64Array row per worker slot, with a block of counters
 * for every listener, cluster and host id (stable across reloads, see Directory).
 *
 *   row(slot) = [ listener ids 0…255 | cluster ids 0…1023 | host ids 0…2047 ]
 *
 * Each worker writes only its own row (single writer: no atomics, no cache-line contention between
 * workers); readers (admin, metrics) sum the rows. Float64 keeps byte counters exact to 2^53.
 * A replaced worker inherits its slot's totals; its gauges (`*_active`) are zeroed, since its
 * connections died with it.
 */
import { formatAddress } from '../config/address.ts';
import type { ClusterConfig, ShuttleConfig } from '../config/schema.ts';
import { MAX_CLUSTERS, MAX_HOSTS, MAX_LISTENERS, namedRoutes, positionalIds, type EntityIds } from './directory.ts';

export const LISTENER_COUNTERS = [
  'downstream_cx_total', 'downstream_cx_active', 'downstream_cx_rx_bytes_total', 'downstream_cx_tx_bytes_total', 'downstream_rq_total', 'downstream_cx_protocol_error',
  // HTTP/2 abuse, each answered by GOAWAY (or, for the last two, per stream): see codecs/http2/connection.ts
  'http2_rapid_reset', 'http2_continuation_flood', 'http2_control_frame_flood', 'http2_empty_frame_flood', 'http2_header_list_too_large', 'http2_refused_stream', 'http2_stalled_stream',
  // TLS termination: handshakes (by version), resumptions, failures by reason
  'ssl_handshake', 'ssl_session_reused', 'ssl_tls12', 'ssl_tls13',
  'ssl_handshake_error_timeout', 'ssl_handshake_error_no_client_cert', 'ssl_handshake_error_bad_client_cert', 'ssl_handshake_error_protocol', 'ssl_handshake_error_other',
  // Requests by response flag, in RESPONSE_FLAGS order (src/filters/response-flags.ts): which filter or failure answered
  'rq_flag_FI', 'rq_flag_DI', 'rq_flag_RL', 'rq_flag_UAEX', 'rq_flag_RBAC', 'rq_flag_UO', 'rq_flag_UH', 'rq_flag_UF', 'rq_flag_UT', 'rq_flag_NR', 'rq_flag_UR', 'rq_flag_DC',
  // Filter decisions
  'rbac_allowed', 'rbac_denied', 'rbac_shadow_allowed', 'rbac_shadow_denied', 'jwt_authn_allowed', 'jwt_authn_denied',
  // Requests ended because no byte moved for stream_idle_timeout
  'downstream_rq_idle_timeout',
] as const;
/** Per cluster: no host to send to; responses by gRPC status (0–16), upstream_rq_grpc_<status>. */
export const CLUSTER_COUNTERS = [
  'upstream_cx_none_healthy',
  'upstream_rq_grpc_0', 'upstream_rq_grpc_1', 'upstream_rq_grpc_2', 'upstream_rq_grpc_3', 'upstream_rq_grpc_4', 'upstream_rq_grpc_5',
  'upstream_rq_grpc_6', 'upstream_rq_grpc_7', 'upstream_rq_grpc_8', 'upstream_rq_grpc_9', 'upstream_rq_grpc_10', 'upstream_rq_grpc_11',
  'upstream_rq_grpc_12', 'upstream_rq_grpc_13', 'upstream_rq_grpc_14', 'upstream_rq_grpc_15', 'upstream_rq_grpc_16',
  // Circuit breakers full (Envoy's names): a connection not opened, a request not queued or not sent, a retry not made
  'upstream_cx_overflow', 'upstream_rq_pending_overflow', 'upstream_rq_retry_overflow',
  // Requests copied to this cluster by a route's request_mirror_policies
  'upstream_rq_mirrored',
  // Retries made (and requests that succeeded after one); requests that ended timed out (route
  // timeout, grpc-timeout, the last per-try timeout, an RPC call's timeout)
  'upstream_rq_retry', 'upstream_rq_retry_success', 'upstream_rq_timeout',
] as const;
export const HOST_COUNTERS = [
  'upstream_cx_total',
  'upstream_cx_active',
  'upstream_cx_connect_fail',
  'upstream_cx_connect_timeout',
  'upstream_rq_total',
  'upstream_rq_error',
  'upstream_cx_tx_bytes_total',
  'upstream_cx_rx_bytes_total',
  /** TLS to the host failed (handshake, certificate, verify_subject_alt_name); also counted in connect_fail. */
  'upstream_cx_ssl_fail',
] as const;

export type ListenerCounter = (typeof LISTENER_COUNTERS)[number];
export type ClusterCounter = (typeof CLUSTER_COUNTERS)[number];
export type HostCounter = (typeof HOST_COUNTERS)[number];

const GAUGES = new Set<string>(['downstream_cx_active', 'upstream_cx_active']);
export const isGauge = (name: string) => GAUGES.has(name);

function fieldIndex<T extends string>(names: readonly T[]): Record<T, number> {
  return Object.fromEntries(names.map((n, i) => [n, i])) as Record<T, number>;
}
export const L = fieldIndex(LISTENER_COUNTERS);
export const C = fieldIndex(CLUSTER_COUNTERS);
export const H = fieldIndex(HOST_COUNTERS);

/** A named route: its stats cells are shared by the listener's routes of that name. */
export interface RouteRef {
  listener: string;
  route: string;
  /** Stable id (see Directory). */
  id: number;
}

export interface HostRef {
  cluster: string;
  /** "host:port" */
  address: string;
  host: string;
  port: number;
  weight: number;
  /** Stable id of the host's cluster (see Directory). */
  clusterIndex: number;
  /** Stable id of the host: its cell in the shared tables. */
  index: number;
  clusterConfig: ClusterConfig;
}

/** A cluster's host refs, kept per (frozen) cluster object: a generation shares unchanged clusters. */
const hostRefCache = new WeakMap<ClusterConfig, { clusterId: number; hostIds: readonly number[]; refs: readonly HostRef[] }>();

function hostRefs(c: ClusterConfig, clusterId: number, hostIds: readonly number[]): readonly HostRef[] {
  const known = hostRefCache.get(c);
  if (known && known.clusterId === clusterId && known.hostIds.length === hostIds.length && known.hostIds.every((id, i) => id === hostIds[i])) return known.refs;
  const refs = c.hosts.map((h, hi): HostRef => ({
    cluster: c.name, address: formatAddress(h), host: h.host, port: h.port, weight: h.weight,
    clusterIndex: clusterId, index: hostIds[hi], clusterConfig: c,
  }));
  hostRefCache.set(c, { clusterId, hostIds, refs });
  return refs;
}

/**
 * Where each entity's counters sit in a row. Rows have a fixed width (room for every id the
 * directory can hand out); a config's entities are placed by their stable ids.
 */
export class StatsLayout {
  readonly listeners: readonly string[];
  readonly clusters: readonly string[];
  /** Stable ids, in config order. */
  readonly listenerIds: readonly number[];
  readonly clusterIds: readonly number[];
  readonly hosts: readonly HostRef[];
  readonly routes: readonly RouteRef[];
  /** Route configs (HTTP and RPC) with a name → the route's stable id: resolved once per request, at its end. */
  readonly routeIds: ReadonlyMap<object, number>;
  readonly width = MAX_LISTENERS * LISTENER_COUNTERS.length + MAX_CLUSTERS * CLUSTER_COUNTERS.length + MAX_HOSTS * HOST_COUNTERS.length;
  private readonly clusterBase = MAX_LISTENERS * LISTENER_COUNTERS.length;
  private readonly hostBase = this.clusterBase + MAX_CLUSTERS * CLUSTER_COUNTERS.length;

  constructor(config: ShuttleConfig, ids: EntityIds = positionalIds(config)) {
    this.listeners = config.listeners.map((l) => l.name);
    this.clusters = config.clusters.map((c) => c.name);
    this.listenerIds = ids.listeners;
    this.clusterIds = ids.clusters;
    const hosts: HostRef[] = [];
    config.clusters.forEach((c, ci) => {
      for (const ref of hostRefs(c, ids.clusters[ci], ids.hosts[ci])) hosts.push(ref);
    });
    this.hosts = hosts;
    const routes: RouteRef[] = [];
    const routeIds = new Map<object, number>();
    config.listeners.forEach((l, li) => {
      const names = namedRoutes(l);
      const idOf = (name: string | undefined) => (name === undefined ? -1 : ids.routes[li][names.indexOf(name)]);
      names.forEach((route, ri) => routes.push({ listener: l.name, route, id: ids.routes[li][ri] }));
      for (const vh of l.virtual_hosts ?? []) for (const r of vh.routes) if (r.name !== undefined) routeIds.set(r, idOf(r.name));
      for (const r of l.rpc?.routes ?? []) if (r.name !== undefined) routeIds.set(r, idOf(r.name));
    });
    this.routes = routes;
    this.routeIds = routeIds;
  }

  /** Offset of a listener's counters, by its stable id. */
  listener(id: number): number {
    return id * LISTENER_COUNTERS.length;
  }

  cluster(id: number): number {
    return this.clusterBase + id * CLUSTER_COUNTERS.length;
  }

  host(id: number): number {
    return this.hostBase + id * HOST_COUNTERS.length;
  }

  /** Offsets of every gauge of this config's entities. */
  gaugeOffsets(): number[] {
    const out: number[] = [];
    for (const id of this.listenerIds) out.push(this.listener(id) + L.downstream_cx_active);
    for (const h of this.hosts) out.push(this.host(h.index) + H.upstream_cx_active);
    return out;
  }
}

export class StatsTable {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  private readonly cells: Float64Array;

  /** The layout changes on reload (same width, more entities); the buffer does not. */
  layout: StatsLayout;

  constructor(layout: StatsLayout, buffer: SharedArrayBuffer) {
    this.layout = layout;
    this.buffer = buffer;
    this.cells = new Float64Array(buffer);
    this.slots = this.cells.length / layout.width;
  }

  static create(layout: StatsLayout, slots: number): StatsTable {
    return new StatsTable(layout, new SharedArrayBuffer(layout.width * slots * Float64Array.BYTES_PER_ELEMENT));
  }

  /** The row a worker writes: a view over its slot only. */
  row(slot: number): Float64Array {
    return this.cells.subarray(slot * this.layout.width, (slot + 1) * this.layout.width);
  }

  /** Sum over every worker of the cell at `offset`. */
  sum(offset: number): number {
    let total = 0;
    for (let s = 0; s < this.slots; s++) total += this.cells[s * this.layout.width + offset];
    return total;
  }

  /** Zeroes `n` cells from `offset` in every row: a recycled id starts from nothing (main thread). */
  zero(offset: number, n: number): void {
    for (let s = 0; s < this.slots; s++) this.cells.fill(0, s * this.layout.width + offset, s * this.layout.width + offset + n);
  }

  zeroGauges(slot: number): void {
    const row = this.row(slot);
    for (const offset of this.layout.gaugeOffsets()) row[offset] = 0;
  }
}
