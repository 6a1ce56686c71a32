/**
 * One HTTP/2 connection (RFC 9113), server or client side: frames in and out, the stream state
 * machine, HPACK, flow control both ways, and the defences a proxy facing hostile peers needs.
 *
 *   bytes ─▶ FrameBuffer ─▶ frame ─▶ SETTINGS / PING / GOAWAY / WINDOW_UPDATE   (connection)
 *                                  └▶ HEADERS (+CONTINUATION) ─▶ HPACK ─▶ checks ─▶ stream.decoder
 *                                  └▶ DATA ─▶ flow control ─▶ stream.decoder (or held while read-disabled)
 *   stream.encode* ─▶ HPACK / DATA frames within the peer's windows (the rest queued per stream) ─▶ SocketOutput
 *
 * Flow control and backpressure: a stream's receive window is reopened only as its data is handed
 * to a consumer that is not read-disabled, so a slow reader stalls its own stream and memory is
 * bounded by streams × window. The connection's receive window is reopened as data arrives (what
 * each stream may hold is bounded by its own window). Outbound data waits in its stream when the
 * peer's windows are shut; the stream's writer hears a high watermark.
 *
 * Defences (each counted): a peer resetting most of its streams (rapid reset, CVE-2023-44487),
 * header blocks over the size or CONTINUATION count limit, header lists over
 * SETTINGS_MAX_HEADER_LIST_SIZE (HPACK bombs: answered per stream), more control frames
 * (SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE) than a budget refilled over time, runs
 * of empty DATA frames, streams beyond SETTINGS_MAX_CONCURRENT_STREAMS (REFUSED_STREAM), and a
 * peer that does not read what it makes us write (control frames queued over a bound).
 */
import type net from 'node:net';
import { ShuttleError } from '../../errors.ts';
import type { StreamDecoder, StreamEncoder, StreamResetReason, StreamWriteCallbacks } from '../../layers.ts';
import { Deadline, deadlines, type DeadlineQueue } from '../../stream/deadlines.ts';
import { HeaderMap } from '../../stream/header-map.ts';
import { IdTable } from '../../stream/id-table.ts';
import { onBatchedData, onBatchedSharedReads, SocketOutput, type OutputOwner } from '../../stream/socket-output.ts';
import {
  DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, ERROR_NAMES, ErrorCode, Flag, FRAME_HEADER_BYTES, FrameType, frameHeader,
  goAwayFrame, MAX_WINDOW, pingFrame, PREFACE, rstStreamFrame, Setting, SETTINGS_ACK, settingsFrame, windowUpdateFrame, writeFrameHeader,
} from './frames.ts';
import { HpackDecoder, HpackEncoder, HpackError, type HpackDecoderState } from './hpack.ts';
import { resumeReading, stopReading } from '../../upgrade/migration.ts';
import { checkFields } from './fields.ts';

export type Role = 'server' | 'client';

/** What we advertise and enforce. */
/** An HTTP/2 connection between streams, as another process takes it over (connection migration). */
export interface Http2MigratedState {
  local: LocalSettings;
  decoder: HpackDecoderState;
  peer: { maxConcurrentStreams: number; initialWindow: number; maxFrameSize: number; headerTableSize: number };
  sendWindow: number;
  recvWindow: number;
  recvUnacked: number;
  lastPeerStreamId: number;
  nextStreamId: number;
}

export interface LocalSettings {
  readonly maxConcurrentStreams: number;
  readonly initialStreamWindow: number;
  readonly connectionWindow: number;
  readonly maxFrameSize: number;
  readonly headerTableSize: number;
  readonly maxHeaderListSize: number;
}

/** Listener counter cells (see stats-table.ts LISTENER_COUNTERS), or undefined (upstream side). */
export interface AbuseCounters {
  readonly row: Float64Array;
  readonly base: number;
}

export interface Http2ConnectionOptions {
  readonly role: Role;
  readonly local: LocalSettings;
  /** Server side: share of streams a client may reset before GOAWAY (after the first 100). */
  readonly maxResetRatio?: number;
  /** `:scheme` of requests (server side). */
  readonly scheme?: string;
  /** Server side: a request body past this gets 413 and the rest is not read (default: no limit). */
  readonly maxRequestBodyBytes?: number;
  /** Server side: a request with more header fields gets 431. */
  readonly maxHeaders?: number;
  /**
   * A stream whose outbound data waits on a window that does not open for this long is reset
   * (a peer that never reads must not hold the stream and its buffers forever). 0: never.
   */
  readonly sendStallTimeoutMs?: number;
  readonly stats: { readonly row: Float64Array; readonly rxCell: number; readonly txCell: number };
  readonly counters?: AbuseCounters;
  readonly counterIndex?: Readonly<Record<AbuseKind, number>>;
  /** A connection error (ours to report: malformed input, a flood). */
  readonly onError: (error: ShuttleError) => void;
  /** A connection moved here from the process this one upgraded, in that state (server side). */
  readonly resumed?: Http2MigratedState;
}

export type AbuseKind = 'rapid_reset' | 'continuation_flood' | 'header_list_too_large' | 'control_frame_flood' | 'empty_frame_flood' | 'refused_stream' | 'stalled_stream';

/** Control frames a peer may send per connection without data, refilled per second. */
const CONTROL_BUDGET = 1000;
const CONTROL_REFILL_PER_SECOND = 1000;
/** Empty DATA frames (no END_STREAM) in a row before the peer is told to calm down. */
const MAX_EMPTY_FRAMES = 20;
/** CONTINUATION frames per header block. */
const MAX_CONTINUATIONS = 64;
/** Bytes queued for a peer that does not read, beyond which control frames are not answered. */
const MAX_UNREAD_OUTPUT = 4 * 1024 * 1024;
/** A stream's queued outbound bytes above which its writer is asked to stop. */
const STREAM_HIGH_WATERMARK = 256 * 1024;
/** Streams opened before the reset ratio is judged. */
const RESET_JUDGED_AFTER = 100;
/** Stream ids we reset recently: late frames for them are dropped, not errors (RFC 9113 §5.4.2). */
const RECENTLY_RESET = 128;
const EMPTY = Buffer.alloc(0);
const NO_PIECES: Buffer[] = [];
/** buf[start, end) in a Buffer of its own (a short one copied by a loop: no argument checks). */
function copyOf(buf: Buffer, start: number, end: number): Buffer {
  const n = end - start;
  const out = Buffer.allocUnsafe(n);
  if (n > 64) buf.copy(out, 0, start, end);
  else for (let i = 0; i < n; i++) out[i] = buf[start + i];
  return out;
}

/** The thread's read buffer for HTTP/2 connections (one read is handled before the next lands). */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);
/** Header blocks and DATA payloads up to these sizes are written in place (SocketOutput.reserve). */
const STAGED_BLOCK_BYTES = 8 * 1024;
const STAGED_DATA_BYTES = 1024;
/** The shared empty list of a stream's lazily made queues (never pushed to). */
const NONE: Buffer[] = [];
/** The PING payload that closes a graceful GOAWAY's first step. */
const GOAWAY_PING = 'shuttle\x00';
/** How long the final GOAWAY waits for the PING sent with the first (see goAway()). */
const GOAWAY_PING_WAIT_MS = 5_000;
/** After the PING came back: time for streams the peer queued behind its ACK to arrive. */
const GOAWAY_GRACE_MS = 500;

/** A protocol error that ends the connection (GOAWAY with `code`). */
class ConnectionError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** A protocol error that ends one stream (RST_STREAM with `code`). */
class StreamError extends Error {
  readonly code: number;
  readonly streamId: number;
  constructor(streamId: number, code: number, message: string) {
    super(message);
    this.streamId = streamId;
    this.code = code;
  }
}

export abstract class Http2Connection implements OutputOwner {
  readonly socket: net.Socket;
  readonly output: SocketOutput;
  protected readonly opts: Http2ConnectionOptions;
  readonly role: Role;
  /** Server side: the request body limit (Infinity: none). */
  readonly maxRequestBodyBytes: number;
  readonly streams = new IdTable<Http2Stream>(2);
  /** The start of a frame (or of the preface) cut by the end of a read, copied. */
  private carry: Buffer | undefined;
  /** Reads land in the thread's shared buffer (readInto): what outlives a read is copied. */
  private sharedReads = false;
  private readonly hpackIn: HpackDecoder;
  private readonly hpackOut = new HpackEncoder();

  // Peer settings (defaults until its SETTINGS arrive).
  peerMaxConcurrentStreams = MAX_WINDOW;
  peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerHeaderTableSize = 4096;
  private peerSettingsReceived = false;

  /** What we may still send on the connection; what the peer may still send us. */
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow = DEFAULT_WINDOW;
  private recvUnacked = 0;

  /** Highest stream id the peer opened; next id we open (client). */
  protected lastPeerStreamId = 0;
  protected nextStreamId = 1;
  private prefaceSeen: boolean;
  private firstFrameSeen = false;
  private settingsAcksPending = 0;

  /** A header block being assembled from HEADERS + CONTINUATION frames. */
  private blockStream = 0;
  private blockFlags = 0;
  /** The block's pieces so far, when it continues in CONTINUATION frames. */
  private blockPieces: Buffer[] = NO_PIECES;
  private blockBytes = 0;
  private blockFrames = 0;
  private blockPriorityDep = -1;

  private controlTokens = CONTROL_BUDGET;
  private controlRefilledAt = performance.now();
  private emptyFrames = 0;
  private streamsOpened = 0;
  private peerResets = 0;
  private readonly recentlyReset: number[] = [];
  /** Streams queued behind the connection's send window, in arrival order. */
  private readonly blocked = new Set<Http2Stream>();

  /** GOAWAY sent (no new streams) / received (last stream id the peer processed). */
  goAwaySent = false;
  /** The first of the two GOAWAYs went out (see goAway()). */
  private goAwayPending = false;
  private goAwayTimer: NodeJS.Timeout | undefined;
  goAwayReceived = -1;
  dead = false;
  private closed = false;
  private writeFull = false;

  constructor(socket: net.Socket, opts: Http2ConnectionOptions) {
    this.socket = socket;
    this.opts = opts;
    this.role = opts.role;
    this.maxRequestBodyBytes = opts.maxRequestBodyBytes ?? Infinity;
    // An upstream connection carries the requests of many downstream ones: coalesced (see SocketOutput).
    this.output = new SocketOutput(socket, this, { coalesce: opts.role === 'client' });
    this.prefaceSeen = opts.role === 'client';
    this.hpackIn = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: opts.local.maxHeaderListSize });
    this.stallQueue = opts.sendStallTimeoutMs ? deadlines.queue(opts.sendStallTimeoutMs) : undefined;
  }

  /** Sends our preface (client) and settings, then reads. `initial`: bytes already read. */
  start(initial?: Buffer): void {
    const s = this.socket;
    const l = this.opts.local;
    s.setNoDelay(true);
    if (this.opts.resumed !== undefined) this.resume(this.opts.resumed);
    else this.greet(l);
    // Reads land in the thread's shared buffer (net/socket-io.ts): no Buffer and no stream work
    // per read. What outlives a read is copied: DATA payloads (at this codec's boundary, as the
    // HTTP/1 codec does with bodies), a header block's fragments, a frame cut by the read's end.
    // Sockets that cannot (TLS, or internals missing) read through 'data'.
    this.sharedReads = onBatchedSharedReads(s, sharedReadBuffer, (chunk) => this.onData(chunk));
    if (!this.sharedReads) onBatchedData(s, (chunk) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('error', () => {});
    s.once('close', () => this.onClose());
    if (initial) this.onData(initial);
    s.resume();
  }

  /** A new connection: our preface (client) and SETTINGS. */
  private greet(l: LocalSettings): void {
    if (this.role === 'client') this.output.push(PREFACE);
    const settings: [number, number][] = [
      [Setting.MAX_CONCURRENT_STREAMS, l.maxConcurrentStreams],
      [Setting.INITIAL_WINDOW_SIZE, l.initialStreamWindow],
      [Setting.MAX_FRAME_SIZE, l.maxFrameSize],
      [Setting.MAX_HEADER_LIST_SIZE, l.maxHeaderListSize],
      [Setting.HEADER_TABLE_SIZE, l.headerTableSize],
    ];
    if (this.role === 'client') settings.push([Setting.ENABLE_PUSH, 0]);
    this.output.push(settingsFrame(settings));
    this.settingsAcksPending++;
    if (l.connectionWindow > DEFAULT_WINDOW) {
      this.output.push(windowUpdateFrame(0, l.connectionWindow - DEFAULT_WINDOW));
      this.recvWindow = l.connectionWindow;
    }
  }

  // ---- connection migration (upgrade/migration.ts) --------------------------------------------

  /**
   * Stops reading once nothing of the peer's is half-read: no partial frame or header block, the
   * handshake done, and every open stream's request received to its end (their responses may
   * still go out; new streams wait in the kernel for the new process). False: not now.
   */
  pauseForMigration(): boolean {
    if (this.dead || this.goAwaySent || this.goAwayPending || this.goAwayReceived >= 0) return false;
    if (this.carry !== undefined || this.blockStream !== 0 || this.settingsAcksPending > 0 || !this.prefaceSeen || !this.peerSettingsReceived) return false;
    if (this.socket.readableLength > 0) return false;
    for (const st of this.streams.values()) if (!st.remoteEnded) return false;
    stopReading(this.socket);
    return true;
  }

  resumeAfterMigration(): void {
    resumeReading(this.socket);
  }

  /**
   * Once no stream is left: what another process needs to go on with this connection. Our HPACK
   * encoder's table is not carried: the new one empties the peer's at its first block.
   */
  migrationState(): Http2MigratedState | undefined {
    if (this.streams.size > 0 || this.blocked.size > 0 || this.dead) return undefined;
    return {
      local: this.opts.local,
      decoder: this.hpackIn.exportState(),
      peer: { maxConcurrentStreams: this.peerMaxConcurrentStreams, initialWindow: this.peerInitialWindow, maxFrameSize: this.peerMaxFrameSize, headerTableSize: this.peerHeaderTableSize },
      sendWindow: this.sendWindow,
      recvWindow: this.recvWindow,
      recvUnacked: this.recvUnacked,
      lastPeerStreamId: this.lastPeerStreamId,
      nextStreamId: this.nextStreamId,
    };
  }

  /** Takes over a connection moved from another process: no preface, no SETTINGS (both were done). */
  private resume(m: Http2MigratedState): void {
    this.prefaceSeen = true;
    this.firstFrameSeen = true;
    this.peerSettingsReceived = true;
    this.peerMaxConcurrentStreams = m.peer.maxConcurrentStreams;
    this.peerInitialWindow = m.peer.initialWindow;
    this.peerMaxFrameSize = m.peer.maxFrameSize;
    this.peerHeaderTableSize = m.peer.headerTableSize;
    this.hpackOut.setPeerMaxTableSize(m.peer.headerTableSize);
    this.hpackOut.forgetPeerTable();
    this.hpackIn.importState(m.decoder);
    this.sendWindow = m.sendWindow;
    this.recvWindow = m.recvWindow;
    this.recvUnacked = m.recvUnacked;
    this.lastPeerStreamId = m.lastPeerStreamId;
    this.nextStreamId = m.nextStreamId;
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  // ---- to be told by the role ---------------------------------------------------------------

  /** A peer-initiated stream's request headers (server side). */
  protected abstract onRequest(stream: Http2Stream, headers: HeaderMap, endStream: boolean): void;
  protected abstract onStreamClosed(stream: Http2Stream): void;
  protected abstract onConnectionClosed(): void;
  protected onGoAway(_lastStreamId: number, _code: number): void {}
  protected onPeerSettings(): void {}

  // ---- OutputOwner --------------------------------------------------------------------------

  onWritten(bytes: number): void {
    this.opts.stats.row[this.opts.stats.txCell] += bytes;
  }

  onFull(): void {
    if (this.writeFull) return;
    this.writeFull = true;
    for (const st of this.streams.values()) st.connectionFull(true);
    this.socket.once('drain', () => {
      this.writeFull = false;
      for (const st of this.streams.values()) st.connectionFull(false);
    });
  }

  // ---- reading ------------------------------------------------------------------------------

  /**
   * Frames are read straight from each socket read (views, no copy). Only a frame cut by the end
   * of a read is copied (its bytes so far, then the rest from the next read), so no buffer larger
   * than one frame is ever made. With shared reads, a DATA payload is copied once, as it leaves
   * for its stream; without, it is passed on as a view of the read.
   */
  private onData(chunk: Buffer): void {
    this.opts.stats.row[this.opts.stats.rxCell] += chunk.length;
    if (this.dead) return;
    try {
      let input = chunk;
      if (this.carry !== undefined) {
        input = this.completeCarry(input);
        if (this.carry !== undefined || this.dead) return;
      }
      let offset = 0;
      if (!this.prefaceSeen) {
        if (!this.checkPreface(input)) return;
        offset = PREFACE.length;
      }
      while (!this.dead && input.length - offset >= FRAME_HEADER_BYTES) {
        const length = this.frameLength(input, offset);
        if (input.length - offset < FRAME_HEADER_BYTES + length) break;
        this.frame(input, offset, length);
        offset += FRAME_HEADER_BYTES + length;
      }
      if (offset < input.length && !this.dead) this.carry = Buffer.from(input.subarray(offset));
    } catch (err) {
      if (err instanceof ConnectionError) return this.connectionError(err.code, err.message);
      if (err instanceof HpackError) return this.connectionError(ErrorCode.COMPRESSION_ERROR, err.message);
      this.opts.onError(new ShuttleError('SHUTTLE_E_INTERNAL', 'internal', `internal error in the HTTP/2 codec: ${(err as Error).message}`, { cause: err }));
      this.connectionError(ErrorCode.INTERNAL_ERROR, 'internal error');
    }
  }

  /** The server's first bytes must be the client preface; false while it is incomplete (carried). */
  private checkPreface(input: Buffer): boolean {
    const n = Math.min(input.length, PREFACE.length);
    if (input.compare(PREFACE, 0, n, 0, n) !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'invalid connection preface');
    if (input.length < PREFACE.length) {
      this.carry = Buffer.from(input);
      return false;
    }
    this.prefaceSeen = true;
    return true;
  }

  private frameLength(buf: Buffer, offset: number): number {
    const length = (buf[offset] << 16) | (buf[offset + 1] << 8) | buf[offset + 2];
    if (length > this.opts.local.maxFrameSize) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes over SETTINGS_MAX_FRAME_SIZE`);
    return length;
  }

  /**
   * Completes the preface or frame carried over from earlier reads with the start of `input`;
   * returns the rest of `input` (the carry stays set while still incomplete).
   */
  private completeCarry(input: Buffer): Buffer {
    for (;;) {
      const carry = this.carry!;
      const want = !this.prefaceSeen ? PREFACE.length : carry.length < FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + this.frameLength(carry, 0);
      if (carry.length < want) {
        const take = Math.min(want - carry.length, input.length);
        const grown = Buffer.allocUnsafe(carry.length + take);
        carry.copy(grown, 0);
        input.copy(grown, carry.length, 0, take);
        input = input.subarray(take);
        this.carry = grown;
        if (grown.length < want) return input;
        // A frame header just completed: its length says how much more the frame needs.
        if (this.prefaceSeen && want === FRAME_HEADER_BYTES) continue;
      }
      const done = this.carry!;
      this.carry = undefined;
      if (!this.prefaceSeen) this.checkPreface(done);
      else this.frame(done, 0, want - FRAME_HEADER_BYTES);
      return input;
    }
  }

  /** Handles one complete frame at buf[offset..]; a stream error resets its stream only. */
  private frame(buf: Buffer, offset: number, length: number): void {
    const type = buf[offset + 3];
    const flags = buf[offset + 4];
    const streamId = buf.readUInt32BE(offset + 5) & 0x7fffffff;
    const start = offset + FRAME_HEADER_BYTES;
    try {
      // The usual HEADERS and DATA frames are handled where they lie (no view of the payload made).
      if (this.firstFrameSeen && this.blockStream === 0) {
        if (type === FrameType.HEADERS) return this.onHeadersFrame(flags, streamId, buf, start, start + length);
        if (type === FrameType.DATA) return this.onDataFrame(flags, streamId, buf, start, start + length);
      }
      this.onFrame(type, flags, streamId, buf.subarray(start, start + length));
    } catch (err) {
      if (!(err instanceof StreamError)) throw err;
      this.streamError(err.streamId, err.code, err.message);
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.firstFrameSeen) {
      this.firstFrameSeen = true;
      if (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame must be SETTINGS');
    }
    if (this.blockStream !== 0 && (type !== FrameType.CONTINUATION || streamId !== this.blockStream)) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
    }
    switch (type) {
      case FrameType.DATA: return this.onDataFrame(flags, streamId, payload, 0, payload.length);
      case FrameType.HEADERS: return this.onHeadersFrame(flags, streamId, payload, 0, payload.length);
      case FrameType.PRIORITY: return this.onPriority(streamId, payload);
      case FrameType.RST_STREAM: return this.onRstStream(streamId, payload);
      case FrameType.SETTINGS: return this.onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE: throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE is not accepted');
      case FrameType.PING: return this.onPing(flags, streamId, payload);
      case FrameType.GOAWAY: return this.onGoAwayFrame(streamId, payload);
      case FrameType.WINDOW_UPDATE: return this.onWindowUpdate(streamId, payload);
      case FrameType.CONTINUATION: return this.onContinuation(flags, streamId, payload);
      default: return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  /** A control frame costs a token; a peer out of tokens is flooding us. */
  private control(): void {
    if (--this.controlTokens >= 0) return;
    const now = performance.now();
    this.controlTokens = Math.min(CONTROL_BUDGET, this.controlTokens + Math.floor(((now - this.controlRefilledAt) / 1000) * CONTROL_REFILL_PER_SECOND));
    this.controlRefilledAt = now;
    if (this.controlTokens < 0) this.calm('control_frame_flood', 'too many control frames');
  }

  private calm(kind: AbuseKind, message: string): never {
    this.count(kind);
    throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, message);
  }

  count(kind: AbuseKind): void {
    const c = this.opts.counters;
    const i = this.opts.counterIndex?.[kind];
    if (c !== undefined && i !== undefined) c.row[c.base + i]++;
  }

  /** A stream id the peer could have opened and we have no state for: idle, or closed. */
  private isIdle(streamId: number): boolean {
    const peerInitiated = (streamId & 1) === (this.role === 'server' ? 1 : 0);
    return peerInitiated ? streamId > this.lastPeerStreamId : streamId >= this.nextStreamId;
  }

  /** A DATA frame whose payload is buf[start, end). */
  private onDataFrame(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const length = end - start;
    // Flow control counts the whole frame, padding included, whatever becomes of it.
    if (length > this.recvWindow) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= length;
    this.recvUnacked += length;
    if (this.recvUnacked >= this.opts.local.connectionWindow / 2) {
      this.output.push(windowUpdateFrame(0, this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    if ((flags & Flag.PADDED) !== 0) {
      if (length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
      const pad = buf[start];
      if (pad >= length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding longer than the payload');
      start++;
      end -= pad;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      if (this.recentlyReset.includes(streamId)) return;
      throw new StreamError(streamId, ErrorCode.STREAM_CLOSED, 'DATA on a closed stream');
    }
    if (stream.remoteEnded) throw new StreamError(streamId, ErrorCode.STREAM_CLOSED, 'DATA after END_STREAM');
    if (length > stream.recvWindow) throw new StreamError(streamId, ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the stream window');
    stream.recvWindow -= length;
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const size = end - start;
    if (size === 0 && !endStream) {
      if (++this.emptyFrames > MAX_EMPTY_FRAMES) this.calm('empty_frame_flood', 'too many empty DATA frames');
    } else {
      this.emptyFrames = 0;
    }
    // Padding is consumed at once; the data when its reader takes it.
    stream.consumed(length - size);
    stream.receiveData(size === 0 ? EMPTY : this.sharedReads ? copyOf(buf, start, end) : buf.subarray(start, end), endStream);
  }

  /** A HEADERS frame whose payload is buf[start, end). */
  private onHeadersFrame(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    if ((flags & Flag.PADDED) !== 0) {
      if (end - start < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
      const pad = buf[start];
      if (pad >= end - start) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding longer than the payload');
      start++;
      end -= pad;
    }
    let dependency = -1;
    if ((flags & Flag.PRIORITY) !== 0) {
      if (end - start < 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      dependency = buf.readUInt32BE(start) & 0x7fffffff;
      start += 5;
    }
    this.blockStream = streamId;
    this.blockFlags = flags;
    this.blockBytes = end - start;
    this.blockFrames = 1;
    this.blockPriorityDep = dependency;
    this.checkBlockSize();
    if ((flags & Flag.END_HEADERS) !== 0) return this.endBlock(buf, start, end);
    this.blockPieces = [Buffer.from(buf.subarray(start, end))]; // (a copy: the read's memory may be reused)
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    if (this.blockStream === 0 || streamId !== this.blockStream) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    if (++this.blockFrames > MAX_CONTINUATIONS) this.calm('continuation_flood', 'too many CONTINUATION frames');
    this.blockPieces.push(Buffer.from(payload));
    this.blockBytes += payload.length;
    this.checkBlockSize();
    if ((flags & Flag.END_HEADERS) === 0) return;
    const block = Buffer.concat(this.blockPieces, this.blockBytes);
    this.blockPieces = NO_PIECES;
    this.endBlock(block, 0, block.length);
  }

  /** A block (compressed) larger than the list it may decode to, with room to spare, is a flood. */
  private checkBlockSize(): void {
    if (this.blockBytes > Math.max(64 * 1024, 2 * this.opts.local.maxHeaderListSize)) this.calm('continuation_flood', 'header block too large');
  }

  /** The complete header block, block[start, end). */
  private endBlock(block: Buffer, start: number, end: number): void {
    const streamId = this.blockStream;
    const flags = this.blockFlags;
    const dependency = this.blockPriorityDep;
    this.blockStream = 0;
    // Decoded whatever becomes of the stream: the dynamic table must follow the peer's.
    const decoded = this.hpackIn.decode(block, start, end);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      if (stream.remoteEnded) throw new StreamError(streamId, ErrorCode.STREAM_CLOSED, 'HEADERS after END_STREAM');
      return stream.receiveHeaders(decoded.headers, decoded.overflow, endStream);
    }
    if (this.role === 'client' || (streamId & 1) === 0) {
      if (!this.isIdle(streamId)) throw new ConnectionError(ErrorCode.STREAM_CLOSED, 'HEADERS on a closed stream');
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS opening a stream the peer may not open');
    }
    if (streamId <= this.lastPeerStreamId) {
      if (this.recentlyReset.includes(streamId)) return;
      throw new ConnectionError(ErrorCode.STREAM_CLOSED, 'HEADERS on a closed stream');
    }
    this.lastPeerStreamId = streamId;
    if (dependency === streamId) throw new StreamError(streamId, ErrorCode.PROTOCOL_ERROR, 'a stream cannot depend on itself');
    if (this.goAwaySent) return this.forget(streamId); // after our GOAWAY: not processed
    if (this.streams.size >= this.opts.local.maxConcurrentStreams) {
      this.count('refused_stream');
      throw new StreamError(streamId, ErrorCode.REFUSED_STREAM, 'over SETTINGS_MAX_CONCURRENT_STREAMS');
    }
    this.streamsOpened++;
    const st = this.newStream(streamId);
    if (decoded.overflow) {
      // An HPACK bomb or plainly too many headers: this stream gets a 431, the connection goes on.
      this.count('header_list_too_large');
      return st.refuse(431, endStream);
    }
    const headers = checkFields(decoded.headers, 'request', this.opts.scheme ?? 'http');
    if (typeof headers === 'string') throw new StreamError(streamId, ErrorCode.PROTOCOL_ERROR, headers);
    if (this.opts.maxHeaders !== undefined && headers.fields.length / 2 > this.opts.maxHeaders) {
      this.count('header_list_too_large');
      return st.refuse(431, endStream);
    }
    if (headers.contentLength > this.maxRequestBodyBytes) return st.refuse(413, endStream);
    if (endStream) st.remoteEnded = true;
    st.expectedLength = headers.contentLength;
    this.onRequest(st, headers, endStream);
  }

  private onPriority(streamId: number, payload: Buffer): void {
    this.control();
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
    if (payload.length !== 5) throw new StreamError(streamId, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY of the wrong size');
    if ((payload.readUInt32BE(0) & 0x7fffffff) === streamId) throw new StreamError(streamId, ErrorCode.PROTOCOL_ERROR, 'a stream cannot depend on itself');
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    this.control();
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
      return;
    }
    const code = payload.readUInt32BE(0);
    if (this.role === 'server' && !stream.localEnded) {
      // A reset before we finished answering: the rapid reset pattern if most streams end so.
      this.peerResets++;
      const ratio = this.opts.maxResetRatio ?? 1;
      if (this.streamsOpened >= RESET_JUDGED_AFTER && this.peerResets > this.streamsOpened * ratio) {
        this.calm('rapid_reset', 'too many streams reset by the client');
      }
    }
    stream.peerReset(code);
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    this.control();
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      if (this.settingsAcksPending > 0 && --this.settingsAcksPending === 0) this.hpackIn.setMaxTableSize(this.opts.local.headerTableSize);
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length not a multiple of 6');
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          this.peerHeaderTableSize = Math.min(value, 65_536);
          this.hpackOut.setPeerMaxTableSize(this.peerHeaderTableSize);
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1 || (this.role === 'client' && value === 1)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'invalid SETTINGS_ENABLE_PUSH');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const st of this.streams.values()) {
            st.sendWindow += delta;
            if (st.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window went over 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 16_777_215) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'invalid SETTINGS_MAX_FRAME_SIZE');
          this.peerMaxFrameSize = value;
          break;
        default:
          break; // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
      }
    }
    this.controlReply(SETTINGS_ACK);
    this.peerSettingsReceived = true;
    this.onPeerSettings();
    this.flushBlocked();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    this.control();
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING of the wrong size');
    if ((flags & Flag.ACK) !== 0) {
      if (this.goAwayPending && payload.toString('latin1', 0, 8) === GOAWAY_PING) {
        // Streams the peer queued before it read our first GOAWAY may still follow its PING ACK
        // (HTTP/2 stacks send control frames first): they are taken during a short grace.
        clearTimeout(this.goAwayTimer);
        this.goAwayTimer = setTimeout(() => this.finalGoAway(ErrorCode.NO_ERROR), GOAWAY_GRACE_MS);
        this.goAwayTimer.unref();
      }
      return;
    }
    this.controlReply(pingFrame(payload.toString('latin1', 0, 8), true));
  }

  /** Answers a control frame, unless the peer is not reading what we send. */
  private controlReply(frame: string): void {
    if (this.socket.writableLength + this.output.pending > MAX_UNREAD_OUTPUT) this.calm('control_frame_flood', 'the peer does not read its control frame answers');
    this.output.push(frame);
  }

  private onGoAwayFrame(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY too short');
    const last = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.goAwayReceived = this.goAwayReceived < 0 ? last : Math.min(last, this.goAwayReceived);
    this.onGoAway(last, code);
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    this.control();
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      this.controlTokens++; // a window update is what a reading peer sends: not a flood
      this.flushBlocked();
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return;
    }
    if (increment === 0) throw new StreamError(streamId, ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) throw new StreamError(streamId, ErrorCode.FLOW_CONTROL_ERROR, 'stream window over 2^31-1');
    this.controlTokens++;
    stream.flushPending();
  }

  /** The peer closed its side: whatever is open cannot complete; ours ends too. */
  private onEnd(): void {
    this.teardown();
    if (!this.closed) {
      this.output.flush();
      this.socket.end();
    }
  }

  private onClose(): void {
    this.closed = true;
    this.teardown();
    this.onConnectionClosed();
  }

  private teardown(): void {
    this.dead = true;
    for (const st of this.streams.values()) st.connectionLost();
  }

  // ---- errors -------------------------------------------------------------------------------

  private connectionError(code: number, message: string): void {
    if (this.dead) return;
    this.opts.onError(new ShuttleError(this.role === 'server' ? 'SHUTTLE_E_HTTP_BAD_REQUEST' : 'SHUTTLE_E_UPSTREAM_PROTOCOL', this.role === 'server' ? 'downstream' : 'upstream', `HTTP/2 ${ERROR_NAMES[code]}: ${message}`));
    this.output.push(goAwayFrame(this.lastPeerStreamId, code, message));
    this.dead = true;
    for (const st of this.streams.values()) st.connectionLost();
    this.output.flush();
    this.socket.end();
    // A peer that does not close after our GOAWAY is closed for it.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private streamError(streamId: number, code: number, message: string): void {
    const stream = this.streams.get(streamId);
    this.forget(streamId);
    this.output.push(rstStreamFrame(streamId, code));
    stream?.closeWithError(new ShuttleError(this.role === 'server' ? 'SHUTTLE_E_HTTP_BAD_REQUEST' : 'SHUTTLE_E_UPSTREAM_PROTOCOL', this.role === 'server' ? 'downstream' : 'upstream', `HTTP/2 stream ${ERROR_NAMES[code]}: ${message}`));
  }

  /** Remembers a stream we reset, so its late frames are dropped quietly. */
  forget(streamId: number): void {
    this.recentlyReset.push(streamId);
    if (this.recentlyReset.length > RECENTLY_RESET) this.recentlyReset.shift();
  }

  // ---- streams --------------------------------------------------------------------------------

  /** The queue of send-stall deadlines (undefined: no stall timeout). */
  readonly stallQueue: DeadlineQueue | undefined;

  protected newStream(id: number): Http2Stream {
    const st = new Http2Stream(this, id, this.opts.local.initialStreamWindow, this.peerInitialWindow);
    this.streams.set(id, st);
    if (this.writeFull) st.connectionFull(true);
    return st;
  }

  /** Called by a stream when both sides are done with it (or it was reset). */
  streamClosed(stream: Http2Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.onStreamClosed(stream);
    if (this.streams.size === 0 && (this.goAwaySent || this.goAwayReceived >= 0) && !this.dead) this.shutdown();
  }

  /** Ends the connection cleanly (after GOAWAY, with no stream left). */
  protected shutdown(): void {
    this.dead = true;
    this.output.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /**
   * GOAWAY: no stream beyond the last one seen is taken; the connection ends when idle.
   * Graceful GOAWAY in two steps (as nghttp2 and Envoy do): first GOAWAY with the largest stream
   * id, which tells the peer to stop opening streams, and a PING; once the PING comes back, and
   * after a short grace for streams the peer had queued behind its PING ACK (HTTP/2 stacks send
   * control frames first), the final GOAWAY with the last stream id really taken. Streams the
   * peer opened before it heard the first are then served instead of refused. Without an answer
   * the final GOAWAY goes after GOAWAY_PING_WAIT_MS; a drain deadline closes the connection anyway.
   */
  goAway(code: number = ErrorCode.NO_ERROR): void {
    if (this.goAwaySent || this.goAwayPending || this.dead) return;
    if (code !== ErrorCode.NO_ERROR) return this.finalGoAway(code);
    this.goAwayPending = true;
    this.output.push(goAwayFrame(MAX_WINDOW, ErrorCode.NO_ERROR) + pingFrame(GOAWAY_PING, false));
    this.goAwayTimer = setTimeout(() => this.finalGoAway(ErrorCode.NO_ERROR), GOAWAY_PING_WAIT_MS);
    this.goAwayTimer.unref();
  }

  /** One-step GOAWAY, then closed once idle: an upstream connection a draining pool lets go. */
  retire(): void {
    this.finalGoAway(ErrorCode.NO_ERROR);
  }

  private finalGoAway(code: number): void {
    clearTimeout(this.goAwayTimer);
    if (this.goAwaySent || this.dead) return;
    this.goAwaySent = true;
    this.output.push(goAwayFrame(this.lastPeerStreamId, code));
    if (this.streams.size === 0) this.shutdown();
  }

  close(): void {
    this.socket.destroy();
  }

  // ---- writing (for streams) ------------------------------------------------------------------

  writeHeaders(stream: Http2Stream, fields: string[], endStream: boolean, neverIndexed?: string[]): void {
    const hpack = this.hpackOut;
    const length = hpack.encodeBlock(fields, neverIndexed);
    const block = hpack.encoded;
    const max = this.peerMaxFrameSize;
    const out = this.output;
    let flags = endStream ? Flag.END_STREAM : 0;
    if (length <= max && length <= STAGED_BLOCK_BYTES) {
      // The usual block: frame header and block written in place, in the output's staging buffer.
      const at = out.reserve(FRAME_HEADER_BYTES + length);
      const staged = out.staged;
      writeFrameHeader(staged, at, length, FrameType.HEADERS, flags | Flag.END_HEADERS, stream.id);
      block.copy(staged, at + FRAME_HEADER_BYTES, 0, length);
      return;
    }
    const own = Buffer.from(block.subarray(0, length));
    hpack.releaseScratch();
    for (let at = 0, type: number = FrameType.HEADERS; at < length; at += max, type = FrameType.CONTINUATION) {
      const end = Math.min(length, at + max);
      if (end === length) flags |= Flag.END_HEADERS;
      this.output.push(frameHeader(end - at, type, flags, stream.id));
      this.output.push(own.subarray(at, end));
      flags = 0;
    }
  }

  /**
   * Sends as much of `data` as the windows allow; returns the bytes sent. `endStream` goes on the
   * last frame only if everything was sent.
   */
  writeData(stream: Http2Stream, data: Buffer, endStream: boolean, volatile: boolean): number {
    const max = this.peerMaxFrameSize;
    const out = this.output;
    let sent = 0;
    while (sent < data.length) {
      const room = Math.min(this.sendWindow, stream.sendWindow, max);
      if (room <= 0) {
        this.blocked.add(stream);
        break;
      }
      const n = Math.min(room, data.length - sent);
      const last = sent + n === data.length;
      const flags = last && endStream ? Flag.END_STREAM : 0;
      if (n <= STAGED_DATA_BYTES) {
        // Small: copied in place after its frame header (cheaper than a piece of its own).
        const at = out.reserve(FRAME_HEADER_BYTES + n);
        writeFrameHeader(out.staged, at, n, FrameType.DATA, flags, stream.id);
        data.copy(out.staged, at + FRAME_HEADER_BYTES, sent, sent + n);
      } else {
        const at = out.reserve(FRAME_HEADER_BYTES);
        writeFrameHeader(out.staged, at, n, FrameType.DATA, flags, stream.id);
        out.push(data.subarray(sent, sent + n), volatile);
      }
      this.sendWindow -= n;
      stream.sendWindow -= n;
      sent += n;
    }
    if (data.length === 0 && endStream) {
      const at = out.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(out.staged, at, 0, FrameType.DATA, Flag.END_STREAM, stream.id);
    }
    return sent;
  }

  writeReset(stream: Http2Stream, code: number): void {
    this.forget(stream.id);
    this.output.push(rstStreamFrame(stream.id, code));
  }

  /** Reopens a stream's receive window by what its reader consumed. */
  writeWindowUpdate(streamId: number, increment: number): void {
    this.output.push(windowUpdateFrame(streamId, increment));
  }

  private flushBlocked(): void {
    if (this.blocked.size === 0) return;
    const streams = [...this.blocked];
    this.blocked.clear();
    for (const st of streams) {
      if (this.sendWindow <= 0) {
        this.blocked.add(st);
        continue;
      }
      st.flushPending();
    }
  }

  get receivedPeerSettings(): boolean {
    return this.peerSettingsReceived;
  }
}

/** One HTTP/2 stream: the StreamEncoder of its sending side; its decoder hears the other side. */
export class Http2Stream implements StreamEncoder {
  readonly protocol = 'HTTP/2';
  readonly id: number;
  readonly conn: Http2Connection;
  decoder: StreamDecoder | undefined;
  writeCallbacks: StreamWriteCallbacks | undefined;
  bytesSent = 0;
  /** Peer's window for what we send; ours for what it sends. */
  sendWindow: number;
  recvWindow: number;
  private readonly initialRecvWindow: number;
  private recvUnacked = 0;
  /** END_STREAM sent / received. */
  localEnded = false;
  remoteEnded = false;
  headersSent = false;
  /** Final (non-1xx) headers received: a second HEADERS is the trailers. */
  finalHeadersReceived = false;
  /** content-length of what the peer sends (-1: none), and what arrived so far. */
  expectedLength = -1;
  private received = 0;
  private readDisables = 0;
  /** Inbound data held while read-disabled; outbound data waiting for a window (made when needed). */
  private held: Buffer[] = NONE;
  private heldEnd = false;
  private pending: Buffer[] = NONE;
  private pendingBytes = 0;
  private pendingEnd = false;
  private pendingTrailers: string[] | undefined;
  private aboveHigh = false;
  private connFull = false;
  private closed = false;
  /** Armed while outbound data waits on a window (see sendStallTimeoutMs). */
  private stallTimer: Deadline | undefined;

  constructor(conn: Http2Connection, id: number, recvWindow: number, sendWindow: number) {
    this.conn = conn;
    this.id = id;
    this.recvWindow = recvWindow;
    this.initialRecvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  // ---- from the connection (inbound) ----------------------------------------------------------

  receiveData(data: Buffer, endStream: boolean): void {
    this.received += data.length;
    if (this.expectedLength >= 0 && (this.received > this.expectedLength || (endStream && this.received !== this.expectedLength))) {
      throw new StreamErrorSignal(this.id, 'content-length does not match the DATA received');
    }
    const maxBody = this.conn.maxRequestBodyBytes;
    if (this.received > maxBody) {
      this.consumed(data.length);
      return this.bodyTooLarge(maxBody);
    }
    if (endStream) this.remoteEnded = true;
    if (this.readDisables > 0) {
      if (data.length > 0) {
        if (this.held === NONE) this.held = [];
        this.held.push(data);
      }
      if (endStream) this.heldEnd = true;
      return;
    }
    this.consumed(data.length);
    this.decoder?.decodeData(data, endStream);
    if (endStream) this.maybeClose();
  }

  receiveHeaders(fields: string[], overflow: boolean, endStream: boolean): void {
    if (overflow) throw new StreamErrorSignal(this.id, 'header list over SETTINGS_MAX_HEADER_LIST_SIZE');
    const isServer = this.conn.role === 'server';
    if (!isServer && !this.finalHeadersReceived) {
      const checked = checkFields(fields, 'response', '');
      if (typeof checked === 'string') throw new StreamErrorSignal(this.id, checked);
      const status = checked.status;
      if (status >= 100 && status < 200) {
        if (endStream) throw new StreamErrorSignal(this.id, 'END_STREAM on an interim response');
        this.decoder?.decodeInformational(checked);
        return;
      }
      this.finalHeadersReceived = true;
      this.expectedLength = noResponseBody(status) ? -1 : checked.contentLength;
      if (endStream) this.remoteEnded = true;
      this.decoder?.decodeHeaders(checked, endStream);
      if (endStream) this.maybeClose();
      return;
    }
    // Trailers: the last frame of the message, no pseudo-headers.
    if (!endStream) throw new StreamErrorSignal(this.id, 'trailers without END_STREAM');
    const checked = checkFields(fields, 'trailers', '');
    if (typeof checked === 'string') throw new StreamErrorSignal(this.id, checked);
    if (this.expectedLength >= 0 && this.received !== this.expectedLength) throw new StreamErrorSignal(this.id, 'content-length does not match the DATA received');
    this.remoteEnded = true;
    if (this.readDisables > 0) {
      this.heldEnd = true;
      this.heldTrailers = checked;
      return;
    }
    this.decoder?.decodeTrailers(checked);
    this.maybeClose();
  }

  private heldTrailers: HeaderMap | undefined;

  /** The peer reset the stream. */
  peerReset(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.remoteEnded = this.localEnded = true;
    this.conn.streamClosed(this);
    const reason: StreamResetReason = code === ErrorCode.REFUSED_STREAM ? 'refused' : 'remote';
    this.decoder?.onReset(reason, new ShuttleError(this.conn.role === 'server' ? 'SHUTTLE_E_DOWNSTREAM_RESET' : code === ErrorCode.REFUSED_STREAM ? 'SHUTTLE_E_UPSTREAM_REFUSED_STREAM' : 'SHUTTLE_E_UPSTREAM_RESET', this.conn.role === 'server' ? 'downstream' : 'upstream', `stream reset by the peer (${ERROR_NAMES[code] ?? code})`));
  }

  /** The peer sent GOAWAY and this stream is past its last stream id: never processed. */
  refusedByGoAway(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.streamClosed(this);
    this.decoder?.onReset('refused', new ShuttleError('SHUTTLE_E_UPSTREAM_REFUSED_STREAM', 'upstream', 'stream not processed before the upstream\'s GOAWAY'));
  }

  connectionLost(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.streamClosed(this);
    const server = this.conn.role === 'server';
    this.decoder?.onReset('connection-termination', new ShuttleError(server ? 'SHUTTLE_E_DOWNSTREAM_RESET' : 'SHUTTLE_E_UPSTREAM_RESET', server ? 'downstream' : 'upstream', 'the HTTP/2 connection closed'));
  }

  /** A stream error we detected: RST_STREAM was sent; the decoder hears it. */
  closeWithError(error: ShuttleError): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.streamClosed(this);
    this.decoder?.onReset('protocol-error', error);
  }

  /** A request refused before it is read (431: header list too large; 413: body too large); the rest of it is not read. */
  refuse(status: 413 | 431, endStream: boolean): void {
    if (endStream) this.remoteEnded = true;
    const h = HeaderMap.response(status, ['content-type', 'text/plain; charset=utf-8']);
    this.encodeHeaders(h, true);
    if (!this.remoteEnded) this.reset('local', ErrorCode.NO_ERROR);
  }

  /**
   * The request body went past max_request_body_bytes while being proxied: whoever decodes it
   * gives up, the client gets 413 if nothing was answered yet, and the rest is not read.
   */
  private bodyTooLarge(max: number): void {
    const decoder = this.decoder;
    this.decoder = undefined;
    decoder?.onReset('local', new ShuttleError('SHUTTLE_E_HTTP_BODY_TOO_LARGE', 'downstream', `request body over ${max} bytes`));
    if (this.closed) return;
    if (!this.headersSent) this.encodeHeaders(HeaderMap.response(413, ['content-type', 'text/plain; charset=utf-8']), true);
    if (!this.closed) this.reset('local', ErrorCode.NO_ERROR);
  }

  /** `n` bytes of this stream's inbound data were taken: reopen the window in halves. */
  consumed(n: number): void {
    if (n <= 0 || this.remoteEnded) return;
    this.recvUnacked += n;
    if (this.recvUnacked >= this.initialRecvWindow / 2) {
      this.conn.writeWindowUpdate(this.id, this.recvUnacked);
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
  }

  connectionFull(full: boolean): void {
    this.connFull = full;
    this.updateWatermark();
  }

  // ---- StreamEncoder (outbound) ---------------------------------------------------------------

  encodeInformational(headers: HeaderMap): void {
    if (this.closed || this.headersSent) return;
    this.conn.writeHeaders(this, responseFields(headers), false);
  }

  encodeHeaders(headers: HeaderMap, endStream: boolean): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    const fields = this.conn.role === 'server' ? responseFields(headers) : requestFields(headers);
    this.conn.writeHeaders(this, fields, endStream);
    if (endStream) this.endLocal();
  }

  encodeData(data: Buffer, endStream: boolean, volatile = false): void {
    if (this.closed || this.localEnded) return;
    this.bytesSent += data.length;
    if (this.pendingBytes > 0 || this.pendingTrailers !== undefined) {
      this.queue(data, endStream, volatile);
      return;
    }
    const sent = this.conn.writeData(this, data, endStream, volatile);
    if (sent < data.length) {
      this.queue(data.subarray(sent), endStream, volatile);
      return;
    }
    if (endStream) this.endLocal();
  }

  encodeTrailers(trailers: HeaderMap): void {
    if (this.closed || this.localEnded) return;
    const fields = trailerFields(trailers);
    if (this.pendingBytes > 0) {
      this.pendingTrailers = fields;
      return;
    }
    this.conn.writeHeaders(this, fields, true);
    this.endLocal();
  }

  reset(reason: StreamResetReason, code: number = reason === 'protocol-error' ? ErrorCode.PROTOCOL_ERROR : reason === 'overflow' ? ErrorCode.REFUSED_STREAM : ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.closed = true;
    this.stallTimer?.cancel();
    this.pending = NONE;
    this.pendingBytes = 0;
    this.conn.writeReset(this, code);
    this.conn.streamClosed(this);
  }

  readDisable(disable: boolean): void {
    if (disable) {
      this.readDisables++;
      return;
    }
    if (this.readDisables === 0 || --this.readDisables > 0) return;
    // Resumed: hand over what was held, then reopen the window for it.
    const held = this.held;
    this.held = NONE;
    for (let i = 0; i < held.length; i++) {
      const last = i === held.length - 1 && this.heldEnd && this.heldTrailers === undefined;
      this.consumed(held[i].length);
      this.decoder?.decodeData(held[i], last);
      if (this.readDisables > 0) {
        // Disabled again while handing over: keep the rest.
        this.held = held.slice(i + 1);
        return;
      }
    }
    if (this.heldEnd) {
      this.heldEnd = false;
      if (this.heldTrailers !== undefined) this.decoder?.decodeTrailers(this.heldTrailers);
      else if (held.length === 0) this.decoder?.decodeData(EMPTY, true);
      this.maybeClose();
    }
  }

  setWriteCallbacks(callbacks: StreamWriteCallbacks): void {
    this.writeCallbacks = callbacks;
    if (this.aboveHigh) callbacks.onAboveWriteHighWatermark();
  }

  // ---- outbound queue -------------------------------------------------------------------------

  private queue(data: Buffer, endStream: boolean, volatile: boolean): void {
    const stall = this.conn.stallQueue;
    if (stall !== undefined && this.stallTimer === undefined) {
      this.stallTimer = new Deadline(() => this.stalled());
      this.stallTimer.arm(stall);
    }
    if (data.length > 0) {
      // A reused buffer's bytes are copied to wait here; a stable one waits as it is.
      if (this.pending === NONE) this.pending = [];
      this.pending.push(volatile ? Buffer.from(data) : data);
      this.pendingBytes += data.length;
    }
    if (endStream) this.pendingEnd = true;
    this.updateWatermark();
  }

  /** The windows opened: send what waits. */
  flushPending(): void {
    if (this.closed) return;
    while (this.pending.length > 0) {
      const data = this.pending[0];
      const last = this.pending.length === 1 && this.pendingEnd && this.pendingTrailers === undefined;
      const sent = this.conn.writeData(this, data, last, false);
      this.pendingBytes -= sent;
      if (sent < data.length) {
        this.pending[0] = data.subarray(sent);
        // Moving again: the stall clock starts over.
        if (sent > 0 && this.stallTimer !== undefined) this.stallTimer.arm(this.conn.stallQueue!);
        this.updateWatermark();
        return;
      }
      this.pending.shift();
    }
    this.stallTimer?.cancel();
    this.stallTimer = undefined;
    if (this.pendingTrailers !== undefined) {
      this.conn.writeHeaders(this, this.pendingTrailers, true);
      this.pendingTrailers = undefined;
      this.endLocal();
    } else if (this.pendingEnd) {
      this.pendingEnd = false;
      this.endLocal();
    }
    this.updateWatermark();
  }

  private updateWatermark(): void {
    const above = this.connFull || this.pendingBytes > STREAM_HIGH_WATERMARK;
    if (above === this.aboveHigh) return;
    this.aboveHigh = above;
    if (above) this.writeCallbacks?.onAboveWriteHighWatermark();
    else this.writeCallbacks?.onBelowWriteLowWatermark();
  }

  /** Outbound data waited on a shut window for the whole stall timeout: the stream is given up. */
  private stalled(): void {
    if (this.closed) return;
    this.conn.count('stalled_stream');
    const decoder = this.decoder;
    this.reset('local', ErrorCode.CANCEL);
    decoder?.onReset('local', new ShuttleError('SHUTTLE_E_STREAM_IDLE_TIMEOUT', this.conn.role === 'server' ? 'downstream' : 'upstream', 'the peer did not open its flow-control window'));
  }

  private endLocal(): void {
    this.localEnded = true;
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closed || !this.localEnded || !this.remoteEnded || this.held.length > 0 || this.heldEnd) return;
    this.closed = true;
    this.conn.streamClosed(this);
  }
}

/** Thrown inside a stream's handling; the connection turns it into RST_STREAM PROTOCOL_ERROR. */
export class StreamErrorSignal extends StreamError {
  constructor(streamId: number, message: string) {
    super(streamId, ErrorCode.PROTOCOL_ERROR, message);
  }
}

function noResponseBody(status: number): boolean {
  return status === 204 || status === 304;
}

/**
 * Lower-case spellings of field names seen in other cases (HTTP/1 names, the proxy's own
 * X-Forwarded-For): one string per name instead of a new one per message, which also keeps its
 * hash for the HPACK encoder's table lookups. Bounded: a client sending endless names only
 * fills it once.
 */
const lowerNames = new Map<string, string>();
const LOWER_NAMES_KEPT = 512;
/**
 * The last name of each length (mod 64) and its lower-case spelling, looked at first: a message's
 * names are mostly the strings of the previous one (already lower-case from an HTTP/2 peer), so a
 * repeat costs an identity compare instead of a hash lookup and a toLowerCase().
 */
const RECENT_NAMES: string[] = new Array<string>(64).fill('');
const RECENT_LOWER: string[] = new Array<string>(64).fill('');

function lowerName(name: string): string {
  const slot = name.length & 63;
  if (RECENT_NAMES[slot] === name) return RECENT_LOWER[slot];
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lower !== name && lowerNames.size < LOWER_NAMES_KEPT) lowerNames.set(name, lower);
  }
  RECENT_NAMES[slot] = name;
  RECENT_LOWER[slot] = lower;
  return lower;
}

/**
 * Writes the lower-cased regular fields of a map, without the connection-specific ones (RFC 9113
 * §8.2.2), into `out` from `at`; returns the new end.
 */
function regularFields(h: HeaderMap, out: string[], at: number, keepTe: boolean): number {
  const f = h.fields;
  for (let i = 0; i < f.length; i += 2) {
    const name = lowerName(f[i]);
    switch (name) {
      case 'host': case 'connection': case 'keep-alive': case 'proxy-connection': case 'transfer-encoding': case 'upgrade': case 'content-length':
        continue;
      case 'te':
        if (!keepTe || f[i + 1].toLowerCase() !== 'trailers') continue;
        break;
    }
    out[at++] = name;
    out[at++] = f[i + 1];
  }
  return at;
}

/**
 * The field list of the head being encoded: encoded at once (writeHeaders), so one list serves
 * every head of the thread instead of a new array each. Written by index and cut to length at
 * the end: emptying it first (`length = 0`) would drop its storage and grow it again per head.
 */
const headFields: string[] = [];
const STATUS_TEXT: string[] = Array.from({ length: 600 }, (_, i) => String(i));

function endFields(out: string[], at: number): string[] {
  if (out.length !== at) out.length = at;
  return out;
}

function responseFields(h: HeaderMap): string[] {
  const out = headFields;
  out[0] = ':status';
  out[1] = STATUS_TEXT[h.status] ?? String(h.status);
  let at = regularFields(h, out, 2, false);
  if (h.contentLength >= 0 && h.status !== 204 && !(h.status >= 100 && h.status < 200)) {
    out[at++] = 'content-length';
    out[at++] = String(h.contentLength);
  }
  return endFields(out, at);
}

function requestFields(h: HeaderMap): string[] {
  const out = headFields;
  out[0] = ':method';
  out[1] = h.method;
  out[2] = ':scheme';
  out[3] = h.scheme || 'http';
  out[4] = ':authority';
  out[5] = h.authority;
  out[6] = ':path';
  out[7] = h.path;
  let at = regularFields(h, out, 8, true);
  if (h.contentLength >= 0) {
    out[at++] = 'content-length';
    out[at++] = String(h.contentLength);
  }
  return endFields(out, at);
}

function trailerFields(h: HeaderMap): string[] {
  const out: string[] = [];
  regularFields(h, out, 0, false);
  return out;
}
