/**
 * Host health shared by all threads (Int32Array over a SharedArrayBuffer, Atomics).
 *
 *   [ host 0 flags | host 1 flags | … | cluster 0 panic | cluster 1 panic | … ]
 *
 * A host's cell: health flags in its low bits; COUNTING (not a health flag) while the outlier
 * detector counts consecutive failures of the host, with an epoch above bit 8 that changes each
 * time counting starts: workers then report a success once per epoch, so a success on any
 * thread ends a run of failures seen on another (see UpstreamReporter).
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

/** Not a health flag: the outlier detector is counting this host's failures (see above). */
const COUNTING = 0x80;
const HEALTH_MASK = 0x7f;
const EPOCH_UNIT = 0x100;

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
    return Atomics.load(this.cells, host) & HEALTH_MASK;
  }

  healthy(host: number): boolean {
    return (Atomics.load(this.cells, host) & HEALTH_MASK) === 0;
  }

  /** The epoch of the current run of counted failures, or -1 when none is counted. */
  countingEpoch(host: number): number {
    const v = Atomics.load(this.cells, host);
    return v & COUNTING ? v >>> 8 : -1;
  }

  /** Main thread: a run of failures begins (a new epoch). */
  startCounting(host: number): void {
    if (Atomics.load(this.cells, host) & COUNTING) return;
    Atomics.add(this.cells, host, EPOCH_UNIT);
    Atomics.or(this.cells, host, COUNTING);
  }

  /** Main thread: the run ended (a success). */
  stopCounting(host: number): void {
    Atomics.and(this.cells, host, ~COUNTING);
  }

  set(host: number, flag: number): void {
    Atomics.or(this.cells, host, flag);
  }

  clear(host: number, flag: number): void {
    Atomics.and(this.cells, host, ~flag);
  }

  /** Main thread: the host left the config; an ejection or a count must not outlive it. */
  forget(host: number): void {
    Atomics.and(this.cells, host, ~(HealthFlag.EJECTED | COUNTING));
  }

  /** Main thread: a recycled id starts healthy, with no epoch behind it. */
  reset(host: number): void {
    Atomics.store(this.cells, host, 0);
  }

  panic(cluster: number): boolean {
    return Atomics.load(this.cells, this.hosts + cluster) === 1;
  }

  setPanic(cluster: number, panic: boolean): void {
    Atomics.store(this.cells, this.hosts + cluster, panic ? 1 : 0);
  }
}
