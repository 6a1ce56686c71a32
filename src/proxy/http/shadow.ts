/**
 * A mirrored copy of a request (Envoy's request_mirror_policies): sent to another cluster, fire and
 * forget. Its response is read and dropped; it never delays, slows or fails the original: a
 * shadow that cannot keep up (its upstream is full, it buffers too much, it has no host) is
 * simply abandoned, and its failures are only counted.
 */
import type { Cluster } from '../../cluster/cluster-manager.ts';
import type { ShuttleError } from '../../errors.ts';
import type { CancelPoolRequest, Pool, PoolCallbacks, StreamDecoder, StreamEncoder, StreamWriteCallbacks } from '../../layers.ts';
import { C } from '../../shared/stats-table.ts';
import { Deadline, deadlines } from '../../stream/deadlines.ts';
import { HeaderMap } from '../../stream/header-map.ts';
import type { WorkerTelemetry } from '../../workers/telemetry.ts';

/** Request body a shadow keeps while it waits for its connection; beyond it, it gives up. */
const MAX_SHADOW_BUFFER = 1024 * 1024;

/** The authority a shadow carries: "host-shadow[:port]" (Envoy's). */
export function shadowAuthority(authority: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(authority)!;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export class ShadowRequest implements StreamDecoder, PoolCallbacks, StreamWriteCallbacks {
  private encoder: StreamEncoder | undefined;
  private cancel: CancelPoolRequest | undefined;
  private readonly headers: HeaderMap;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;
  private trailers: HeaderMap | undefined;
  private done = false;
  private readonly timer: Deadline | undefined;

  /** Starts the shadow of `original` (already prepared for upstream) on a host of `cluster`. */
  constructor(original: HeaderMap, endStream: boolean, cluster: Cluster, pools: { get(host: Cluster['hosts'][number], cluster: Cluster, telemetry: WorkerTelemetry): Pool }, telemetry: WorkerTelemetry, timeoutMs: number) {
    const h = new HeaderMap(original.fields.slice());
    h.method = original.method;
    h.path = original.path;
    h.scheme = original.scheme;
    h.authority = shadowAuthority(original.authority);
    h.contentLength = original.contentLength;
    this.headers = h;
    this.ended = endStream;
    telemetry.row[telemetry.layout.cluster(cluster.index) + C.upstream_rq_mirrored]++;
    const host = cluster.lb.choose();
    if (host === undefined) {
      this.done = true;
      return;
    }
    if (timeoutMs > 0) {
      this.timer = new Deadline(() => this.abandon());
      this.timer.arm(deadlines.queue(timeoutMs));
    }
    const cancel = pools.get(host, cluster, telemetry).newStream(this, this, timeoutMs);
    if (this.encoder === undefined && !this.done) this.cancel = cancel;
  }

  /** More of the original's body. Buffers are never reused by server codecs: kept as they are. */
  data(data: Buffer, endStream: boolean): void {
    if (this.done) return;
    if (endStream) this.ended = true;
    if (this.encoder !== undefined) return this.encoder.encodeData(data, endStream);
    this.pendingBytes += data.length;
    if (this.pendingBytes > MAX_SHADOW_BUFFER) return this.abandon();
    this.pending.push(data);
  }

  requestTrailers(t: HeaderMap): void {
    if (this.done) return;
    this.ended = true;
    if (this.encoder !== undefined) this.encoder.encodeTrailers(t);
    else this.trailers = t;
  }

  onPoolReady(encoder: StreamEncoder): void {
    this.cancel = undefined;
    if (this.done) return encoder.reset('local');
    this.encoder = encoder;
    encoder.setWriteCallbacks(this);
    const pieces = this.pending;
    this.pending = [];
    const trailers = this.trailers;
    encoder.encodeHeaders(this.headers, this.ended && pieces.length === 0 && trailers === undefined);
    for (let i = 0; i < pieces.length; i++) encoder.encodeData(pieces[i], this.ended && trailers === undefined && i === pieces.length - 1);
    if (trailers !== undefined) encoder.encodeTrailers(trailers);
  }

  onPoolFailure(_error: ShuttleError): void {
    this.cancel = undefined;
    this.finish();
  }

  // The response is read and dropped.
  decodeInformational(): void {}
  decodeHeaders(_h: HeaderMap, endStream: boolean): void {
    if (endStream) this.finish();
  }
  decodeData(_d: Buffer, endStream: boolean): void {
    if (endStream) this.finish();
  }
  decodeTrailers(): void {
    this.finish();
  }
  onReset(): void {
    this.finish();
  }

  /** Its upstream cannot take more: a shadow never holds the original back. */
  onAboveWriteHighWatermark(): void {
    this.abandon();
  }
  onBelowWriteLowWatermark(): void {}

  private abandon(): void {
    if (this.done) return;
    this.cancel?.();
    this.encoder?.reset('local');
    this.finish();
  }

  private finish(): void {
    this.done = true;
    this.timer?.cancel();
    this.pending = [];
  }
}
