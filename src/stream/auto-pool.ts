/**
 * `protocol: auto` upstream: the host's ALPN answer picks HTTP/2 or HTTP/1.1 (Envoy's auto
 * codec). The first request to a host opens one TLS connection offering both; its answer is
 * remembered for the host and the request (and any queued behind it) goes to that protocol's pool,
 * whose connections then offer only that protocol. Without TLS there is no ALPN: HTTP/1.1.
 *
 *   newStream ─▶ protocol known? ─yes─▶ its pool
 *                   │ no
 *                   └─ queue ─▶ probe (TLS, ALPN h2,http/1.1) ─▶ remember ─▶ its pool
 *                                 └─ failed ─▶ the HTTP/1.1 pool (it reports the failure)
 *
 * The probe connection is closed once it has answered: one extra handshake per host and
 * worker, resumed with the session the probe gets.
 */
import type { Host } from '../cluster/host.ts';
import type { CancelPoolRequest, Pool, PoolCallbacks, StreamDecoder } from '../layers.ts';
import type { UpstreamTls } from '../net/tls-client.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';
import { connectUpstream } from './connector.ts';

interface Queued {
  decoder: StreamDecoder;
  callbacks: PoolCallbacks;
  waitTimeoutMs: number;
  cancel: CancelPoolRequest | undefined;
  cancelled: boolean;
}

const withAlpn = (t: UpstreamTls, alpn: string[]): UpstreamTls => ({ ...t, options: { ...t.options, ALPNProtocols: alpn } });

export class AutoPool implements Pool {
  readonly host: Host;
  private readonly h1: Pool;
  private readonly h2: Pool;
  private readonly tls: UpstreamTls | undefined;
  private readonly telemetry: WorkerTelemetry;
  private readonly connectTimeout: number;
  private chosen: Pool | undefined;
  private probing = false;
  private queued: Queued[] = [];

  /** `make(tls)` builds the pool of one protocol with connections that offer only it. */
  constructor(host: Host, tls: UpstreamTls | undefined, connectTimeout: number, telemetry: WorkerTelemetry, makeH1: (tls: UpstreamTls | undefined) => Pool, makeH2: (tls: UpstreamTls | undefined) => Pool) {
    this.host = host;
    this.tls = tls;
    this.telemetry = telemetry;
    this.connectTimeout = connectTimeout;
    this.h1 = makeH1(tls && withAlpn(tls, ['http/1.1']));
    this.h2 = makeH2(tls && withAlpn(tls, ['h2']));
    if (tls === undefined) this.chosen = this.h1;
  }

  /** The protocol the host chose, once known. */
  get protocol(): 'HTTP/1.1' | 'HTTP/2' | undefined {
    return this.chosen === undefined ? undefined : this.chosen === this.h2 ? 'HTTP/2' : 'HTTP/1.1';
  }

  newStream(decoder: StreamDecoder, callbacks: PoolCallbacks, waitTimeoutMs: number): CancelPoolRequest {
    if (this.chosen !== undefined) return this.chosen.newStream(decoder, callbacks, waitTimeoutMs);
    const q: Queued = { decoder, callbacks, waitTimeoutMs, cancel: undefined, cancelled: false };
    this.queued.push(q);
    if (!this.probing) this.probe();
    return () => {
      q.cancelled = true;
      q.cancel?.();
    };
  }

  private probe(): void {
    this.probing = true;
    connectUpstream(this.host, this.telemetry, { timeoutMs: this.connectTimeout, tls: withAlpn(this.tls!, ['h2', 'http/1.1']) }, (error, socket) => {
      this.probing = false;
      let pool = this.h1;
      if (error === undefined && socket !== undefined) {
        const alpn = (socket as import('node:tls').TLSSocket).alpnProtocol;
        this.chosen = pool = alpn === 'h2' ? this.h2 : this.h1;
        socket.destroy();
      }
      // (After a failed probe the HTTP/1.1 pool connects again and reports its own failure; the
      // next request probes anew.)
      const queued = this.queued;
      this.queued = [];
      for (const q of queued) if (!q.cancelled) q.cancel = pool.newStream(q.decoder, q.callbacks, q.waitTimeoutMs);
    });
  }

  drain(): void {
    this.h1.drain();
    this.h2.drain();
  }
}
