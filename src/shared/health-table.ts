/**
 * Host health shared by all threads (Int32Array over a SharedArrayBuffer, Atomics).
 *
 *   [ host 0 flags | host 1 flags | … | cluster 0 panic | cluster 1 panic | … ]
 *
 * Flags are written only by the main thread (active health checker, outlier detector); workers
 * read them on every load-balancing pick. A host is healthy when its flags are 0. A cluster is
 * in panic when too few of its hosts are healthy (Envoy's panic threshold): its balancer then
 * ignores health, because sending to every host beats sending to none.
 */
export const HealthFlag = {
  /** Failed active health checks (or has not passed the first one). */
  FAILED_ACTIVE_HC: 1,
  /** Ejected by outlier detection for a back-off period. */
  EJECTED: 2,
} as const;

export function flagNames(flags: number): string[] {
  const out: string[] = [];
  if (flags & HealthFlag.FAILED_ACTIVE_HC) out.push('failed_active_health_check');
  if (flags & HealthFlag.EJECTED) out.push('ejected');
  return out;
}

export class HealthTable {
  readonly buffer: SharedArrayBuffer;
  readonly hosts: number;
  private readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer, hosts: number) {
    this.buffer = buffer;
    this.hosts = hosts;
    this.cells = new Int32Array(buffer);
  }

  static create(hosts: number, clusters: number): HealthTable {
    return new HealthTable(new SharedArrayBuffer((hosts + clusters) * Int32Array.BYTES_PER_ELEMENT), hosts);
  }

  flags(host: number): number {
    return Atomics.load(this.cells, host);
  }

  healthy(host: number): boolean {
    return Atomics.load(this.cells, host) === 0;
  }

  set(host: number, flag: number): void {
    Atomics.or(this.cells, host, flag);
  }

  clear(host: number, flag: number): void {
    Atomics.and(this.cells, host, ~flag);
  }

  panic(cluster: number): boolean {
    return Atomics.load(this.cells, this.hosts + cluster) === 1;
  }

  setPanic(cluster: number, panic: boolean): void {
    Atomics.store(this.cells, this.hosts + cluster, panic ? 1 : 0);
  }
}
