/**
 * One upstream pool per host id, kept across config reloads while the host and the settings its
 * pool was built with (`key`) stay the same; otherwise the old pool drains and a new one starts.
 */
export class HostPools<P extends { drain(): void }> {
  private readonly pools = new Map<number, { pool: P; key: string }>();

  get(hostId: number, key: string, create: () => P): P {
    const entry = this.pools.get(hostId);
    if (entry && entry.key === key) return entry.pool;
    entry?.pool.drain();
    const pool = create();
    this.pools.set(hostId, { pool, key });
    return pool;
  }

  /** Drains the pools of hosts not in `keep` (host ids of the new config). */
  retain(keep: ReadonlySet<number>): void {
    for (const [id, entry] of this.pools) {
      if (keep.has(id)) continue;
      entry.pool.drain();
      this.pools.delete(id);
    }
  }

  drainAll(): void {
    for (const e of this.pools.values()) e.pool.drain();
  }
}
