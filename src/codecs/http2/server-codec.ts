/**
 * HTTP/2 server codec: a downstream HTTP/2 connection (h2c with prior knowledge now; h2 by ALPN
 * once TLS lands) whose request streams go to the connection manager like HTTP/1's do.
 */
import type net from 'node:net';
import type { Http2OptionsConfig } from '../../config/route-schema.ts';
import type { ShuttleError } from '../../errors.ts';
import type { ServerCodec, ServerCodecCallbacks } from '../../layers.ts';
import { L } from '../../shared/stats-table.ts';
import type { HeaderMap } from '../../stream/header-map.ts';
import { Http2Connection, type AbuseCounters, type AbuseKind, type Http2MigratedState, type Http2Stream } from './connection.ts';

export interface Http2ServerOptions {
  readonly settings: Http2OptionsConfig;
  readonly maxHeaderListSize: number;
  /** A request body past this gets 413. */
  readonly maxRequestBodyBytes: number;
  /** A request with more header fields gets 431. */
  readonly maxHeaders: number;
  readonly scheme: string;
  readonly stats: { readonly row: Float64Array; readonly rxCell: number; readonly txCell: number };
  readonly counters: AbuseCounters;
  /** Reset a response stream whose client keeps its window shut this long (stream_idle_timeout). */
  readonly sendStallTimeoutMs: number;
  readonly onError: (error: ShuttleError) => void;
  /** A connection moved here from the process this one upgraded (its settings stay as they were). */
  readonly resumed?: Http2MigratedState;
}

/** Where each kind of abuse is counted in a listener's stats block. */
const LISTENER_ABUSE: Readonly<Record<AbuseKind, number>> = {
  rapid_reset: L.http2_rapid_reset,
  continuation_flood: L.http2_continuation_flood,
  control_frame_flood: L.http2_control_frame_flood,
  empty_frame_flood: L.http2_empty_frame_flood,
  header_list_too_large: L.http2_header_list_too_large,
  refused_stream: L.http2_refused_stream,
  stalled_stream: L.http2_stalled_stream,
};

export class Http2ServerCodec extends Http2Connection implements ServerCodec {
  readonly protocol = 'HTTP/2';
  private readonly callbacks: ServerCodecCallbacks;

  constructor(socket: net.Socket, callbacks: ServerCodecCallbacks, opts: Http2ServerOptions) {
    const s = opts.settings;
    super(socket, {
      role: 'server',
      local: opts.resumed?.local ?? {
        maxConcurrentStreams: s.max_concurrent_streams,
        initialStreamWindow: s.initial_stream_window_size,
        connectionWindow: s.initial_connection_window_size,
        maxFrameSize: s.max_frame_size,
        headerTableSize: s.header_table_size,
        maxHeaderListSize: opts.maxHeaderListSize,
      },
      resumed: opts.resumed,
      maxResetRatio: s.max_reset_stream_ratio,
      scheme: opts.scheme,
      maxRequestBodyBytes: opts.maxRequestBodyBytes,
      maxHeaders: opts.maxHeaders,
      sendStallTimeoutMs: opts.sendStallTimeoutMs,
      stats: opts.stats,
      counters: opts.counters,
      counterIndex: LISTENER_ABUSE,
      onError: opts.onError,
    });
    this.callbacks = callbacks;
  }

  protected onRequest(stream: Http2Stream, headers: HeaderMap, endStream: boolean): void {
    const decoder = this.callbacks.newStream(stream);
    stream.decoder = decoder;
    this.callbacks.onStreamCountChanged(this.streams.size);
    decoder.decodeHeaders(headers, endStream);
  }

  protected onStreamClosed(): void {
    this.callbacks.onStreamCountChanged(this.streams.size);
  }

  protected onConnectionClosed(): void {
    this.callbacks.onClose();
  }
}
