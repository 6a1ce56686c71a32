/**
 * Upstream pools of one kind, per host id and per pool settings (`key`): listeners whose settings
 * differ get their own pools to the same host instead of replacing each other's. Pools are kept
 * across config reloads; at each reload (retain) a pool whose host left the config, or that was
 * not asked for since the previous reload (its settings changed, or nothing routes there now),
 * drains: it closes its connections as they become idle, and a later request makes a new one.
 */
export class HostPools<P extends { drain(): void }> {
  private readonly pools = new Map<number, Map<string, { pool: P; used: boolean }>>();

  get(hostId: number, key: string, create: () => P): P {
    let byKey = this.pools.get(hostId);
    if (byKey === undefined) this.pools.set(hostId, (byKey = new Map()));
    let entry = byKey.get(key);
    if (entry === undefined) byKey.set(key, (entry = { pool: create(), used: true }));
    else entry.used = true;
    return entry.pool;
  }

  /** At a reload: drains the pools of hosts not in `keep` (host ids of the new config) and the unused ones. */
  retain(keep: ReadonlySet<number>): void {
    for (const [id, byKey] of this.pools) {
      for (const [key, entry] of byKey) {
        if (keep.has(id) && entry.used) {
          entry.used = false;
          continue;
        }
        entry.pool.drain();
        byKey.delete(key);
      }
      if (byKey.size === 0) this.pools.delete(id);
    }
  }

  drainAll(): void {
    for (const byKey of this.pools.values()) for (const e of byKey.values()) e.pool.drain();
  }
}
