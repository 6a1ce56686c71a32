/**
 * Upstream pools of one kind, per host id and per pool settings (`key`): listeners whose settings
 * differ get their own pools to the same host instead of replacing each other's. Pools are kept
 * across config reloads; at a reload (retain) a pool whose host left the config, or whose
 * settings no longer appear in it, drains: it closes its connections as they become idle.
 */
export class HostPools<P extends { drain(): void }> {
  private readonly pools = new Map<number, Map<string, P>>();

  get(hostId: number, key: string, create: () => P): P {
    let byKey = this.pools.get(hostId);
    if (byKey === undefined) this.pools.set(hostId, (byKey = new Map()));
    let pool = byKey.get(key);
    if (pool === undefined) byKey.set(key, (pool = create()));
    return pool;
  }

  /** At a reload: drains the pools of hosts not in `hostIds` and of settings not in `keys`. */
  retain(hostIds: ReadonlySet<number>, keys: ReadonlySet<string>): void {
    for (const [id, byKey] of this.pools) {
      for (const [key, pool] of byKey) {
        if (hostIds.has(id) && keys.has(key)) continue;
        pool.drain();
        byKey.delete(key);
      }
      if (byKey.size === 0) this.pools.delete(id);
    }
  }

  drainAll(): void {
    for (const byKey of this.pools.values()) for (const pool of byKey.values()) pool.drain();
  }
}

/**
 * Pools found lately, by cluster object (one per config generation), a second key (the listener's
 * pool options for RPC; none for HTTP) and host id. Why: finding a pool in HostPools takes a
 * settings key, two Map lookups and a closure, and every request of a generation to the same host
 * finds the same pool. clear() whenever HostPools lets pools go (retain, drain), so that a pool
 * let go is never handed out.
 */
export class FoundPools<P> {
  private byCluster = new WeakMap<object, { key: unknown; pools: (P | undefined)[] }>();

  get(cluster: object, key: unknown, hostIndex: number): P | undefined {
    const e = this.byCluster.get(cluster);
    return e !== undefined && e.key === key ? e.pools[hostIndex] : undefined;
  }

  set(cluster: object, key: unknown, hostIndex: number, pool: P): void {
    let e = this.byCluster.get(cluster);
    if (e === undefined || e.key !== key) this.byCluster.set(cluster, (e = { key, pools: [] }));
    e.pools[hostIndex] = pool;
  }

  clear(): void {
    this.byCluster = new WeakMap();
  }
}
