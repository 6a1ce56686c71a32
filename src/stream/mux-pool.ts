/**
 * Multiplexed upstream connections for RPC protocols (Bolt, Dubbo): a few long-lived connections
 * per host and worker, many requests in flight on each, matched to their responses by request id.
 *
 *   downstream id 17 ─▶ remap to this connection's next free id (u32, wraps at 2^32) ─▶ upstream
 *   upstream response id ─▶ pending entry ─▶ original id back ─▶ downstream
 *
 * A connection that closes fails only its own in-flight requests; requests written while it was
 * still connecting fail with `connect` (nothing was sent: safe to try another host).
 *
 * MuxPool is a Pool like the HTTP ones (layers.ts): newStream(decoder, callbacks) hands out a
 * MuxStream, whose request "headers" are the call's frame itself (FrameHeaders, MOSN's XFrame: an
 * RPC frame is its own header map) and whose response comes back as FrameHeaders of the answer,
 * with endStream. The frame travels as the bytes it arrived as: no re-encoding on the hot path.
 */
import type net from 'node:net';
import { ShuttleError } from '../errors.ts';
import type { CancelPoolRequest, Pool, PoolCallbacks, StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks, UpstreamInfo } from '../layers.ts';
import { HeaderMap } from './header-map.ts';
import { IdTable } from './id-table.ts';
import { connectUpstream } from './connector.ts';
import type { UpstreamTls } from '../net/tls-client.ts';
import { FrameBuffer } from '../codecs/frame-buffer.ts';
import { beginBatch, endBatch, SocketOutput } from './socket-output.ts';
import type { Host } from '../cluster/host.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';

/** What the pool needs to know of a protocol's frames. */
export interface MuxCodec<F> {
  readonly name: 'bolt' | 'dubbo';
  /** A frame at `offset`; its bytes are a view of `buf` (see setRaw). */
  decode(buf: Buffer, offset: number, maxFrameBytes: number): { frame: F; length: number } | undefined;
  requestId(frame: F): number;
  setRequestId(frame: F, id: number): void;
  raw(frame: F): Buffer;
  /** Gives a frame other bytes, the same or none (its view of a reused read buffer copied or dropped). */
  setRaw(frame: F, bytes: Buffer): void;
  isResponse(frame: F): boolean;
  /** The local answer to a heartbeat the upstream sends us, if `frame` is one. */
  heartbeatReply(frame: F): Buffer | undefined;
}

export type MuxFailure = 'connect' | 'closed' | 'protocol';

/**
 * A client connection whose reading follows an upstream connection's room (backpressure): told
 * when a connection it sent to is full, and when it drained.
 */
export type MuxFeeder = StreamWriteCallbacks;

export interface MuxPending<F> {
  onResponse(frame: F): void;
  onFail(kind: MuxFailure, error: Error): void;
}

const ID_SPACE = 2 ** 32;

/** Every upstream RPC connection of a thread reads into this buffer; a read is decoded before the next. */
const muxReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);



export class MuxConnection<F> {
  readonly socket: net.Socket;
  private readonly codec: MuxCodec<F>;
  private readonly maxFrameBytes: number;
  private readonly pending = new IdTable<MuxPending<F>>();
  private nextId = 1;
  /** Bytes of a frame still arriving. */
  private readonly frames = new FrameBuffer();
  connected = false;
  closed = false;
  /** No new requests come here: the connection ends once the last one in flight is answered. */
  private draining = false;
  private readonly onGone: (c: MuxConnection<F>) => void;
  /**
   * Requests sent during one event leave in one write: at many calls in flight, one client read
   * carries many frames for the same upstream connection (see socket-output.ts).
   */
  private readonly output: SocketOutput;
  /**
   * Backpressure: clients that sent here during the current event (`feeder`, then `feeders`: one
   * read of one client is the usual event, so no Set work per call); when the upstream socket is
   * full, they stop being read (`paused`) until it drains, so that a slow upstream holds at most
   * one read per client in memory, not everything its clients send.
   */
  private feeder: MuxFeeder | undefined;
  private readonly feeders = new Set<MuxFeeder>();
  private readonly paused = new Set<MuxFeeder>();
  private full = false;

  /** `sharedReads`: the socket reads into the thread's shared buffer (onRead); else 'data' events. */
  constructor(socket: net.Socket, codec: MuxCodec<F>, maxFrameBytes: number, onGone: (c: MuxConnection<F>) => void, sharedReads = false) {
    this.socket = socket;
    this.codec = codec;
    this.maxFrameBytes = maxFrameBytes;
    this.onGone = onGone;
    this.output = new SocketOutput(socket, { onWritten() {}, onFull: () => this.onFull() });
    if (!sharedReads) socket.on('data', (chunk: Buffer) => this.onRead(chunk, false));
    socket.on('error', () => {});
    socket.once('close', () => this.fail(this.connected ? 'closed' : 'connect', new Error(this.connected ? 'upstream connection closed' : 'upstream connect failed')));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** A frame's size on the wire (what a stream reports as bytes sent). */
  frameBytes(frame: F): number {
    return this.codec.raw(frame).length;
  }

  /**
   * Sends a request frame under a fresh id; `pending` hears its response (unless oneway);
   * `feeder`: the client it came from, paused while this connection cannot take more;
   * `volatile`: the frame's bytes are a view of a read buffer reused after this event.
   */
  send(frame: F, pending: MuxPending<F> | undefined, feeder?: MuxFeeder, volatile = false): number {
    if (feeder !== undefined) {
      // Nothing waiting to be written: the previous flush went through; its feeders are done.
      if (this.output.pending === 0) {
        this.feeder = undefined;
        if (this.feeders.size > 0) this.feeders.clear();
      }
      if (this.full) this.pause(feeder);
      else if (this.feeder === undefined) this.feeder = feeder;
      else if (feeder !== this.feeder) this.feeders.add(feeder);
    }
    let id = this.nextId;
    // Skip ids still in flight after a wrap-around (2^32 requests later).
    while (this.pending.has(id)) id = (id + 1) % ID_SPACE;
    this.nextId = (id + 1) % ID_SPACE;
    this.codec.setRequestId(frame, id);
    if (pending) this.pending.set(id, pending);
    this.output.push(this.codec.raw(frame), volatile);
    return id;
  }

  private onFull(): void {
    if (this.feeder !== undefined) this.pause(this.feeder);
    this.feeder = undefined;
    for (const f of this.feeders) this.pause(f);
    this.feeders.clear();
    if (this.full) return;
    this.full = true;
    this.socket.once('drain', () => {
      this.full = false;
      const paused = [...this.paused];
      this.paused.clear();
      for (const f of paused) f.onBelowWriteLowWatermark();
    });
  }

  private pause(f: MuxFeeder): void {
    if (this.paused.has(f)) return;
    this.paused.add(f);
    f.onAboveWriteHighWatermark();
  }

  /** Forgets a request (timed out downstream); a late response is dropped. */
  cancel(id: number): void {
    this.pending.delete(id);
    this.endIfDrained();
  }

  /** Ends the connection once its in-flight requests are answered (or cancelled). */
  drainWhenIdle(): void {
    this.draining = true;
    this.endIfDrained();
  }

  private endIfDrained(): void {
    if (this.draining && this.pending.size === 0 && !this.closed) {
      this.output.flush();
      this.socket.end();
    }
  }

  /**
   * A read. Every answer it completes goes to its client in one write per client connection,
   * flushed before the next read (`volatile`: the chunk is the shared read buffer, reused then).
   */
  onRead(chunk: Buffer, volatile: boolean): void {
    beginBatch();
    try {
      this.onData(chunk, volatile);
    } finally {
      endBatch();
    }
  }

  private onData(chunk: Buffer, volatile: boolean): void {
    const buf = this.frames.append(chunk, volatile);
    let offset = 0;
    try {
      for (;;) {
        const decoded = this.codec.decode(buf, offset, this.maxFrameBytes);
        if (!decoded) break;
        offset += decoded.length;
        const frame = decoded.frame;
        if (!this.codec.isResponse(frame)) {
          const reply = this.codec.heartbeatReply(frame);
          if (reply) this.output.push(reply);
          continue;
        }
        const id = this.codec.requestId(frame);
        const p = this.pending.get(id);
        if (!p) continue; // cancelled (timed out) or unknown: dropped
        this.pending.delete(id);
        p.onResponse(frame);
        this.endIfDrained();
      }
    } catch (err) {
      // A malformed upstream frame poisons the whole connection: fail what is in flight on it.
      this.fail('protocol', err as Error);
      this.socket.destroy();
      return;
    }
    this.frames.consumed(offset);
  }

  private fail(kind: MuxFailure, error: Error): void {
    if (this.closed) return;
    this.closed = true;
    // Clients waiting for this connection to drain are read again (their calls here fail below).
    const paused = [...this.paused];
    this.paused.clear();
    for (const f of paused) f.onBelowWriteLowWatermark();
    const all = this.pending.values();
    this.pending.clear();
    this.onGone(this);
    for (const p of all) p.onFail(kind, error);
  }
}

/**
 * An RPC frame as a stream's headers: the request a MuxStream sends, or the response it decodes.
 * `oneway`: a request that gets no answer (the stream ends once it is written). `volatile`: the
 * frame's bytes are a view of a read buffer that is reused after this event (written out before).
 */
export class FrameHeaders<F> extends HeaderMap {
  readonly frame: F;
  readonly oneway: boolean;
  volatile: boolean;

  constructor(frame: F, oneway = false, volatile = false) {
    super(NO_FIELDS);
    this.frame = frame;
    this.oneway = oneway;
    this.volatile = volatile;
  }
}

/**
 * Frames carry no field list of their own (the protocol's header map stays in the frame's bytes):
 * one shared empty list, frozen so that nothing adds to it by mistake.
 */
const NO_FIELDS = Object.freeze([]) as unknown as string[];

const MUX_FAILURE_CODE = { connect: 'SHUTTLE_E_UPSTREAM_CONNECT_FAILED', closed: 'SHUTTLE_E_UPSTREAM_RESET', protocol: 'SHUTTLE_E_UPSTREAM_PROTOCOL' } as const;

const MUX_FAILURE_RESET: Record<MuxFailure, StreamResetReason> = {
  connect: 'connection-failure',
  closed: 'connection-termination',
  protocol: 'protocol-error',
};

/** One call on a multiplexed connection: the StreamEncoder a MuxPool hands out. */
export class MuxStream<F> implements StreamEncoder, MuxPending<F> {
  readonly protocol: 'bolt' | 'dubbo';
  private readonly conn: MuxConnection<F>;
  private readonly decoder: StreamDecoder;
  private feeder: MuxFeeder | undefined;
  /** The id the request went out under (0: not sent). */
  private id = 0;
  private ended = false;
  bytesSent = 0;

  constructor(conn: MuxConnection<F>, decoder: StreamDecoder, protocol: 'bolt' | 'dubbo') {
    this.conn = conn;
    this.decoder = decoder;
    this.protocol = protocol;
  }

  /** Sends the call: `headers` must be the FrameHeaders of a request frame of this protocol. */
  encodeHeaders(headers: HeaderMap, _endStream: boolean): void {
    if (this.id !== 0 || this.ended) return;
    if (!(headers instanceof FrameHeaders)) {
      // (Translating an HTTP request into a Bolt or Dubbo call is not built yet.)
      this.ended = true;
      this.decoder.onReset('protocol-error', new ShuttleError('SHUTTLE_E_NO_TRANSLATION', 'internal', `a ${this.protocol} upstream takes ${this.protocol} calls only`));
      return;
    }
    const frame = headers.frame as F;
    this.bytesSent += this.conn.frameBytes(frame);
    this.id = this.conn.send(frame, headers.oneway ? undefined : this, this.feeder, headers.volatile);
    if (headers.oneway) this.ended = true;
  }

  /** A frame is whole: bodies travel in it, and there are no 1xx answers or trailers. */
  encodeInformational(): void {}
  encodeData(): void {}
  encodeTrailers(): void {}

  /**
   * Sent on a connection that is up: only a connection that never came up fails its calls as
   * unsent (`connection-failure`, which a caller sends elsewhere).
   */
  get sentOnConnected(): boolean {
    return this.id !== 0 && this.conn.connected;
  }

  /** Forgets the call upstream (timed out, the client went away): a late answer is dropped. */
  reset(_reason: StreamResetReason): void {
    if (this.ended) return;
    this.ended = true;
    if (this.id !== 0) this.conn.cancel(this.id);
  }

  /** Answers are whole frames: there is nothing to hold back. */
  readDisable(): void {}

  /** Who stops sending calls while the upstream connection is full (MuxConnection.send). */
  setWriteCallbacks(callbacks: StreamWriteCallbacks): void {
    this.feeder = callbacks;
  }

  // ---- MuxPending ---------------------------------------------------------------------------

  onResponse(frame: F): void {
    if (this.ended) return;
    this.ended = true;
    this.decoder.decodeHeaders(new FrameHeaders(frame), true);
  }

  onFail(kind: MuxFailure, error: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.decoder.onReset(MUX_FAILURE_RESET[kind], new ShuttleError(MUX_FAILURE_CODE[kind], 'upstream', error.message));
  }
}

const NO_CANCEL: CancelPoolRequest = () => {};

export class MuxPool<F> implements Pool {
  readonly host: Host;
  private readonly conns: MuxConnection<F>[] = [];
  private readonly size: number;
  private readonly connectTimeout: number;
  private readonly codec: MuxCodec<F>;
  private readonly maxFrameBytes: number;
  private readonly telemetry: WorkerTelemetry;
  private rotor = 0;

  private readonly tls: UpstreamTls | undefined;

  constructor(host: Host, opts: { size: number; connectTimeout: number; maxFrameBytes: number; tls?: UpstreamTls }, codec: MuxCodec<F>, telemetry: WorkerTelemetry) {
    this.tls = opts.tls;
    this.host = host;
    this.size = opts.size;
    this.connectTimeout = opts.connectTimeout;
    this.maxFrameBytes = opts.maxFrameBytes;
    this.codec = codec;
    this.telemetry = telemetry;
    this.readyInfo = Object.freeze({ host, reused: false, protocol: codec.name });
  }

  private readonly readyInfo: UpstreamInfo;

  /**
   * A stream on one of the connections, at once: a connection still connecting takes requests
   * too (they wait in its socket), so there is never a wait and nothing to cancel.
   */
  newStream(decoder: StreamDecoder, callbacks: PoolCallbacks, _waitTimeoutMs = 0): CancelPoolRequest {
    callbacks.onPoolReady(new MuxStream(this.connection(), decoder, this.codec.name), this.readyInfo);
    return NO_CANCEL;
  }

  /** A connection to send on: one of `size`, opened on demand (requests may queue on a connecting one). */
  connection(): MuxConnection<F> {
    if (this.conns.length < this.size) return this.open();
    this.rotor = (this.rotor + 1) % this.conns.length;
    return this.conns[this.rotor];
  }

  /** Closes every connection once its in-flight requests are answered (drain, config change). */
  drain(): void {
    for (const c of this.conns) c.drainWhenIdle();
  }

  private open(): MuxConnection<F> {
    // Requests may be written while it connects: they wait in the socket, and fail as `connect`
    // (nothing sent) if it never does.
    let conn: MuxConnection<F> | undefined;
    // Plain TCP reads into the thread's shared buffer: no Buffer and no stream machinery per read.
    // (A TLS socket reads through its own buffers.)
    const shared = this.tls === undefined;
    const socket = connectUpstream(this.host, this.telemetry, {
      timeoutMs: this.connectTimeout,
      tls: this.tls,
      onread: shared ? { buffer: muxReadBuffer, callback: (bytes: number) => {
        conn?.onRead(muxReadBuffer.subarray(0, bytes), true);
        return true;
      } } : undefined,
    }, (err) => {
      if (!err && conn) conn.connected = true;
    });
    conn = new MuxConnection<F>(socket, this.codec, this.maxFrameBytes, (c) => {
      const i = this.conns.indexOf(c);
      if (i >= 0) this.conns.splice(i, 1);
    }, shared);
    this.conns.push(conn);
    return conn;
  }
}
