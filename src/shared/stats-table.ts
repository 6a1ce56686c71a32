/**
 * Counters shared by all threads: one Float64Array row per worker slot, laid out from the config
 * (listeners, then clusters, then hosts, in config order, so every thread derives the same layout).
 *
 *   row(slot) = [ listener 0 counters | listener 1 … | cluster 0 … | host 0 counters | host 1 … ]
 *
 * Each worker writes only its own row (single writer: no atomics, no cache-line contention between
 * workers); readers (admin, metrics) sum the rows. Float64 keeps byte counters exact to 2^53.
 * A replaced worker inherits its slot's totals; its gauges (`*_active`) are zeroed, since its
 * connections died with it.
 */
import { formatAddress } from '../config/address.ts';
import type { ShuttleConfig } from '../config/schema.ts';

export const LISTENER_COUNTERS = ['downstream_cx_total', 'downstream_cx_active', 'downstream_cx_rx_bytes_total', 'downstream_cx_tx_bytes_total', 'downstream_rq_total'] as const;
export const CLUSTER_COUNTERS = ['upstream_cx_none_healthy'] as const;
export const HOST_COUNTERS = [
  'upstream_cx_total',
  'upstream_cx_active',
  'upstream_cx_connect_fail',
  'upstream_cx_connect_timeout',
  'upstream_rq_total',
  'upstream_rq_error',
  'upstream_cx_tx_bytes_total',
  'upstream_cx_rx_bytes_total',
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

export interface HostRef {
  cluster: string;
  /** "host:port" */
  address: string;
  host: string;
  port: number;
  weight: number;
  clusterIndex: number;
  /** Index among all hosts of all clusters, in config order. */
  index: number;
}

/** Where each entity's counters sit in a row; the same in every thread for the same config. */
export class StatsLayout {
  readonly listeners: readonly string[];
  readonly clusters: readonly string[];
  readonly hosts: readonly HostRef[];
  readonly width: number;
  private readonly clusterBase: number;
  private readonly hostBase: number;

  constructor(config: ShuttleConfig) {
    this.listeners = config.listeners.map((l) => l.name);
    this.clusters = config.clusters.map((c) => c.name);
    const hosts: HostRef[] = [];
    config.clusters.forEach((c, clusterIndex) => {
      for (const h of c.hosts) hosts.push({ cluster: c.name, address: formatAddress(h), host: h.host, port: h.port, weight: h.weight, clusterIndex, index: hosts.length });
    });
    this.hosts = hosts;
    this.clusterBase = this.listeners.length * LISTENER_COUNTERS.length;
    this.hostBase = this.clusterBase + this.clusters.length * CLUSTER_COUNTERS.length;
    this.width = this.hostBase + hosts.length * HOST_COUNTERS.length;
  }

  listener(index: number): number {
    return index * LISTENER_COUNTERS.length;
  }

  cluster(index: number): number {
    return this.clusterBase + index * CLUSTER_COUNTERS.length;
  }

  host(index: number): number {
    return this.hostBase + index * HOST_COUNTERS.length;
  }

  /** Offsets of every gauge in a row. */
  gaugeOffsets(): number[] {
    const out: number[] = [];
    this.listeners.forEach((_, i) => out.push(this.listener(i) + L.downstream_cx_active));
    this.hosts.forEach((h) => out.push(this.host(h.index) + H.upstream_cx_active));
    return out;
  }
}

export class StatsTable {
  readonly buffer: SharedArrayBuffer;
  readonly layout: StatsLayout;
  readonly slots: number;
  private readonly cells: Float64Array;

  constructor(layout: StatsLayout, buffer: SharedArrayBuffer) {
    this.layout = layout;
    this.buffer = buffer;
    this.cells = new Float64Array(buffer);
    this.slots = this.cells.length / Math.max(1, layout.width);
  }

  static create(layout: StatsLayout, slots: number): StatsTable {
    return new StatsTable(layout, new SharedArrayBuffer(Math.max(1, layout.width) * slots * Float64Array.BYTES_PER_ELEMENT));
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

  zeroGauges(slot: number): void {
    const row = this.row(slot);
    for (const offset of this.layout.gaugeOffsets()) row[offset] = 0;
  }
}
