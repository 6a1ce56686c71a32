/**
 * What the RPC proxy of one worker shares across its connections: per-generation routing, and one
 * multiplexed pool per upstream host (kept across reloads while the host stays).
 */
import type { Cluster, ClusterManager } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { RpcOptionsConfig } from '../../config/route-schema.ts';
import type { ListenerConfig } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import type { RpcRouter } from '../../router/rpc-router.ts';
import { MuxPool } from '../../stream/mux-pool.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';
import type { BoltFrame } from '../../codecs/bolt/frame.ts';
import { boltCodec } from './bolt-connection.ts';

export interface RpcListenerSnapshot {
  readonly listener: ListenerConfig;
  readonly listenerIndex: number;
  readonly router: RpcRouter;
  readonly clusters: ClusterManager;
  readonly telemetry: WorkerTelemetry;
}

export class MuxPoolRegistry {
  private readonly pools = new Map<number, { pool: MuxPool<BoltFrame>; key: string }>();

  get(host: Host, cluster: Cluster, rpc: RpcOptionsConfig, telemetry: WorkerTelemetry): MuxPool<BoltFrame> {
    const key = JSON.stringify([rpc.connections_per_host, rpc.max_frame_bytes, cluster.config.connect_timeout]);
    const entry = this.pools.get(host.index);
    if (entry && entry.key === key) return entry.pool;
    entry?.pool.drain();
    const pool = new MuxPool<BoltFrame>(host, { size: rpc.connections_per_host, connectTimeout: cluster.config.connect_timeout, maxFrameBytes: rpc.max_frame_bytes }, boltCodec, telemetry);
    this.pools.set(host.index, { pool, key });
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
}

export interface RpcProxyContext {
  snapshot(): RpcListenerSnapshot;
  readonly pools: MuxPoolRegistry;
  readonly logger: Logger;
}
