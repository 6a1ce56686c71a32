/**
 * What the RPC proxy of one worker shares across its connections: per-generation routing, and
 * per protocol one multiplexed pool per upstream host (kept across reloads while the host stays).
 */
import type { Cluster, ClusterManager } from '../../cluster/cluster-manager.ts';
import type { Host } from '../../cluster/host.ts';
import type { RpcOptionsConfig } from '../../config/route-schema.ts';
import type { ClusterConfig, ListenerConfig, ShuttleConfig as Config } from '../../config/schema.ts';
import type { Logger } from '../../log/logger.ts';
import type { RpcRouter } from '../../router/rpc-router.ts';
import { FoundPools, HostPools } from '../../stream/host-pools.ts';
import { MuxPool, type MuxCodec } from '../../stream/mux-pool.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';
import type { RpcFilterChain } from '../../filters/chain.ts';
import type { BoltFrame } from '../../codecs/bolt/frame.ts';
import type { DubboFrame } from '../../codecs/dubbo/frame.ts';

export interface RpcListenerSnapshot {
  readonly listener: ListenerConfig;
  readonly listenerIndex: number;
  readonly router: RpcRouter;
  readonly clusters: ClusterManager;
  readonly telemetry: WorkerTelemetry;
  /** The listener's rpc_filters for this generation; undefined when it has none. */
  readonly filters: RpcFilterChain | undefined;
}

/** Multiplexed pools of one protocol, one per upstream host (see HostPools). */
export class MuxPoolRegistry<F> {
  private readonly byHost = new HostPools<MuxPool<F>>();
  private readonly codec: MuxCodec<F>;

  constructor(codec: MuxCodec<F>) {
    this.codec = codec;
  }

  /** Pool settings key per (listener rpc options, cluster config): computed once per config pair, not per call. */
  private readonly keys = new WeakMap<object, WeakMap<object, string>>();

  private options(rpc: RpcOptionsConfig, cluster: Cluster) {
    return { size: rpc.connections_per_host, connectTimeout: cluster.config.connect_timeout, maxFrameBytes: rpc.max_frame_bytes, tls: cluster.tls };
  }

  settingsKey(rpc: RpcOptionsConfig, cluster: Cluster): string {
    let byCluster = this.keys.get(rpc);
    if (byCluster === undefined) this.keys.set(rpc, (byCluster = new WeakMap()));
    let key = byCluster.get(cluster.config);
    if (key === undefined) {
      const o = this.options(rpc, cluster);
      byCluster.set(cluster.config, (key = JSON.stringify([o.size, o.connectTimeout, o.maxFrameBytes, o.tls?.key ?? null])));
    }
    return key;
  }

  /** Pools found lately by cluster, listener options and host (see FoundPools). */
  private readonly found = new FoundPools<MuxPool<F>>();

  get(host: Host, cluster: Cluster, rpc: RpcOptionsConfig, telemetry: WorkerTelemetry): MuxPool<F> {
    let pool = this.found.get(cluster, rpc, host.index);
    if (pool === undefined) {
      pool = this.byHost.get(host.index, this.settingsKey(rpc, cluster), () => new MuxPool<F>(host, this.options(rpc, cluster), this.codec, telemetry));
      this.found.set(cluster, rpc, host.index, pool);
    }
    return pool;
  }

  /** At a reload: keeps the pools the new config still describes (see HostPools.retain). */
  retain(config: Config, clusters: ClusterManager, hostIds: ReadonlySet<number>): void {
    this.found.clear();
    const keys = new Set<string>();
    for (const l of config.listeners) if (l.rpc) for (const c of clusters.all()) keys.add(this.settingsKey(l.rpc, c));
    this.byHost.retain(hostIds, keys);
  }
}

export interface RpcProxyContext {
  snapshot(): RpcListenerSnapshot;
  readonly pools: { bolt: MuxPoolRegistry<BoltFrame>; dubbo: MuxPoolRegistry<DubboFrame> };
  readonly logger: Logger;
}
