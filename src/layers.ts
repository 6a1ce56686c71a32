/**
 * The interfaces between Shuttle's layers, in one place (Envoy's and MOSN's shape).
 *
 *            downstream connection                                   upstream connection
 *  NET/IO    listener ─accept/hand-off─▶ socket                      Connector ─connect─▶ socket
 *                           │                                                   ▲
 *  PROTOCOL  ProtocolRegistry: first bytes, ALPN                                │
 *                           ▼                                                   │
 *            ServerCodec (HTTP/1, HTTP/2)                          ClientCodec (HTTP/1, HTTP/2)
 *              │ per request: newStream(responseEncoder)              ▲ per request: newStream(responseDecoder)
 *              ▼            → requestDecoder                          │            → requestEncoder
 *  STREAM    ConnectionManager ──▶ ProxyStream ───────────────────▶ Pool.newStream(decoder, callbacks)
 *                                    │ headers / data / trailers        │ HTTP/1: one stream per connection
 *                                    │ both ways, per-stream             │ HTTP/2: many per connection
 *                                    │ backpressure (readDisable)        │ Bolt/Dubbo: multiplexed frames
 *  PROXY     route ─▶ cluster ─▶ retries, timeouts, local replies (in the stream's own protocol)
 *  UPSTREAM  Cluster ─ lb.choose ─▶ Host ─▶ its Pool (one per host, settings and protocol)
 *
 * A codec turns bytes into streams of headers + data + trailers and back; it knows nothing of
 * routing. The proxy knows nothing of bytes. Everything that crosses is a HeaderMap, a Buffer, or
 * a reset with a reason. Errors are ShuttleErrors (src/errors.ts): one code registry that gives
 * each failure its source, its retryability, its HTTP status and its gRPC status.
 */
import type net from 'node:net';
import type { Host } from './cluster/host.ts';
import type { ShuttleError } from './errors.ts';
import type { HeaderMap } from './stream/header-map.ts';
import type { UpstreamTls } from './net/tls-client.ts';

export type { HeaderMap } from './stream/header-map.ts';

/**
 * The protocol of a stream. Bolt and Dubbo streams are calls on a multiplexed connection: their
 * headers are the call's frame itself (FrameHeaders in stream/mux-pool.ts), their body is in it.
 */
export type StreamProtocol = 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2' | 'bolt' | 'dubbo';

/** Why a stream ended without completing. */
export type StreamResetReason =
  /** We gave up on it (a timeout, a retry elsewhere, the other side went away). */
  | 'local'
  /** The peer reset it (RST_STREAM, or an HTTP/1 connection closed mid-message). */
  | 'remote'
  /** The connection could not be made; nothing was sent. */
  | 'connection-failure'
  /** The connection ended while the stream was open. */
  | 'connection-termination'
  /** The peer refused it before processing (REFUSED_STREAM, or past a GOAWAY's last stream id): safe to retry. */
  | 'refused'
  /** The peer broke the protocol on this stream. */
  | 'protocol-error'
  /** A limit was hit (too many streams, a flood). */
  | 'overflow';

/**
 * Receives one stream's decoded message: the request, on the server side; the response, on the
 * client side. Calls come in order: [informational*] headers [data*] [trailers] — or onReset at
 * any point, after which nothing follows.
 */
export interface StreamDecoder {
  /** A 1xx response other than 101 (client side only). */
  decodeInformational(headers: HeaderMap): void;
  decodeHeaders(headers: HeaderMap, endStream: boolean): void;
  /** `data` may be a view of a buffer reused after this call returns: copy what you keep. */
  decodeData(data: Buffer, endStream: boolean): void;
  /** Trailers end the stream. */
  decodeTrailers(trailers: HeaderMap): void;
  onReset(reason: StreamResetReason, error?: ShuttleError): void;
}

/** The outbound side's buffer crossed its high (stop feeding me) or low (go on) watermark. */
export interface StreamWriteCallbacks {
  onAboveWriteHighWatermark(): void;
  onBelowWriteLowWatermark(): void;
}

/**
 * Sends one stream's message: the response, on the server side; the request, on the client side.
 * Encoders copy what they have to keep (data passed in may be a reused buffer).
 */
export interface StreamEncoder {
  readonly protocol: StreamProtocol;
  encodeInformational(headers: HeaderMap): void;
  encodeHeaders(headers: HeaderMap, endStream: boolean): void;
  /**
   * `volatile`: `data` is a view of memory reused once this call returns (an upstream HTTP/1
   * connection's shared read buffer): the encoder copies what it keeps. Otherwise the caller's
   * buffer is never written again and may be kept as it is.
   */
  encodeData(data: Buffer, endStream: boolean, volatile?: boolean): void;
  encodeTrailers(trailers: HeaderMap): void;
  /** Abandons the stream (HTTP/2: RST_STREAM; HTTP/1: the connection closes). */
  reset(reason: StreamResetReason): void;
  /**
   * Stops (true) or resumes (false) delivering this stream's inbound data: backpressure for this
   * stream only (HTTP/2 stops opening its flow-control window; HTTP/1 stops reading the socket,
   * which carries only this stream). Calls nest: each true needs its false.
   */
  readDisable(disable: boolean): void;
  setWriteCallbacks(callbacks: StreamWriteCallbacks): void;
  /** Bytes written on this stream so far (the access log's bytes_sent). */
  readonly bytesSent: number;
}

/** What a server codec calls for each new request stream. */
export interface ServerCodecCallbacks {
  /** A request stream began; returns who decodes it. */
  newStream(encoder: StreamEncoder): StreamDecoder;
  /** The codec ended the connection (closed by the peer, an error, or after goAway). */
  onClose(): void;
  /** A stream became active or finished: the count is the connection manager's idle clock. */
  onStreamCountChanged(active: number): void;
  /** Malformed input was answered and the connection is closing; or an internal error (a bug). */
  onCodecError(error: ShuttleError): void;
}

/** One downstream connection's protocol: HTTP/1.1 or HTTP/2 (h2c now, h2 by ALPN with TLS). */
export interface ServerCodec {
  readonly protocol: string;
  /** Starts reading; `initial` holds bytes already read by protocol detection. */
  start(initial?: Buffer): void;
  /** Takes no new stream; active ones finish (HTTP/1: Connection: close; HTTP/2: GOAWAY). */
  goAway(): void;
  /** Closes the connection now (drain deadline, idle timeout). */
  close(): void;
  readonly activeStreams: number;
}

/** What a pool tells the one that asked for a stream. */
export interface PoolCallbacks {
  /** A connection took the stream: send the request on `encoder`. */
  onPoolReady(encoder: StreamEncoder, upstream: UpstreamInfo): void;
  /** No stream: connect failure or timeout, overflow. Nothing was sent. */
  onPoolFailure(error: ShuttleError): void;
}

export interface UpstreamInfo {
  readonly host: Host;
  /** The connection served a stream before: a failure may be a stale keep-alive. */
  readonly reused: boolean;
  readonly protocol: Exclude<StreamProtocol, 'HTTP/1.0'>;
}

/**
 * A cluster's max_connections circuit breaker, as a pool sees it: ask before opening a connection
 * ('counted': release it when the connection closes; 'free': no limit), and report a refusal.
 */
export interface ConnectionLimit {
  acquire(): 'refused' | 'counted' | 'free';
  release(): void;
  overflowed(): void;
}

/** Cancels a wait for a stream (the request was given up on before a connection took it). */
export type CancelPoolRequest = () => void;

/**
 * Upstream streams to one host (one pool per worker, host, settings and protocol). HTTP/1 gives a
 * connection to one stream at a time; HTTP/2 multiplexes many streams on few connections; Bolt
 * and Dubbo multiplex calls on a few long-lived connections, matched to answers by request id.
 */
export interface Pool {
  readonly host: Host;
  newStream(decoder: StreamDecoder, callbacks: PoolCallbacks, waitTimeoutMs: number): CancelPoolRequest;
  /** Stops reusing connections; closes idle ones now and busy ones when they become idle. */
  drain(): void;
}

export interface ConnectOptions {
  readonly timeoutMs: number;
  /** Read into this shared buffer (Node's `onread`) instead of a Buffer per read. */
  readonly onread?: { buffer: Buffer; callback: (bytes: number) => boolean };
  /** Keep our side open when the peer half-closes (the L4 proxy passes half-closes on). */
  readonly allowHalfOpen?: boolean;
  /** TLS to the host (the cluster's `tls`); `onread` is not used then. */
  readonly tls?: UpstreamTls;
}
